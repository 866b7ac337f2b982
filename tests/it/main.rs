//! The fast integration tests: no Docker engine needed. One binary (ripgrep / rust-analyzer
//! style), so the support code and the library link once; `mod <topic>;` per former file.

mod tidy;

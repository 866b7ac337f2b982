//! Smoke checks (http / tcp / exec) run after apply, with attempts and intervals.

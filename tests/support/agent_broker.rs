//! The broker emulator for agent tests, on its own runtime (part of `support/agent.rs`).
#![allow(dead_code)]

use std::time::Duration;

use c2quay_broker_emulator::{EmulatorConfig, RunningEmulator};

/// The broker environment every test environment records into (one per test broker).
pub const BROKER_ENV: &str = "staging";

/// The broker emulator on its own runtime (a one-worker multi-thread runtime keeps serving while
/// the test thread blocks).
pub struct Broker {
    emulator: Option<RunningEmulator>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Broker {
    /// Starts an emulator on 127.0.0.1:0 with the [`BROKER_ENV`] environment.
    pub fn start() -> Broker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("emulator runtime");
        let emulator = runtime
            .block_on(c2quay_broker_emulator::start(EmulatorConfig::default()))
            .expect("start the broker emulator");
        emulator
            .create_environment(BROKER_ENV, false)
            .expect("create the broker environment");
        Broker {
            emulator: Some(emulator),
            runtime: Some(runtime),
        }
    }

    /// The emulator (seeding, faults, inspection).
    pub fn emu(&self) -> &RunningEmulator {
        self.emulator.as_ref().expect("emulator running")
    }

    /// The URL manifests point `broker.url` at.
    pub fn url(&self) -> String {
        self.emu().base_url.clone()
    }

    /// Makes `pacticipant` `version` deployable to [`BROKER_ENV`]: a pact from it to its
    /// provider `<pacticipant>-provider`, whose version 7 is deployed there and verified it.
    pub fn seed_deployable(&self, pacticipant: &str, version: &str) {
        self.seed_unverified(pacticipant, version);
        self.verify(pacticipant, version);
    }

    /// Like [`Broker::seed_deployable`] without the verification: the gate answers Unknown.
    pub fn seed_unverified(&self, pacticipant: &str, version: &str) {
        let emu = self.emu();
        let provider = format!("{pacticipant}-provider");
        let pact = serde_json::json!({
            "consumer": {"name": pacticipant},
            "provider": {"name": provider},
            "interactions": [{
                "description": format!("a request from {pacticipant} {version}"),
                "request": {"method": "GET", "path": "/"},
                "response": {"status": 200}
            }],
            "metadata": {"pactSpecification": {"version": "2.0.0"}}
        });
        emu.seed_pact(pacticipant, version, &provider, &pact);
        if emu
            .currently_deployed(BROKER_ENV)
            .iter()
            .all(|d| d.pacticipant != provider)
        {
            emu.create_version(&provider, "7", Some("main"));
            emu.record_deployment(&provider, "7", BROKER_ENV, None)
                .expect("record the provider");
        }
    }

    /// The provider's successful verification of `pacticipant` `version`'s pact.
    pub fn verify(&self, pacticipant: &str, version: &str) {
        let provider = format!("{pacticipant}-provider");
        self.emu()
            .seed_verification(&provider, "7", pacticipant, version, true)
            .expect("seed the verification");
    }

    /// Every record (current or not) of `pacticipant` in [`BROKER_ENV`], oldest first, as
    /// `(version, currently_deployed)`.
    pub fn records(&self, pacticipant: &str) -> Vec<(String, bool)> {
        self.emu()
            .deployments(BROKER_ENV)
            .into_iter()
            .filter(|d| d.pacticipant == pacticipant)
            .map(|d| (d.version.clone(), d.currently_deployed))
            .collect()
    }

    /// The versions of `pacticipant` currently deployed in [`BROKER_ENV`].
    pub fn current(&self, pacticipant: &str) -> Vec<String> {
        self.records(pacticipant)
            .into_iter()
            .filter(|(_, current)| *current)
            .map(|(version, _)| version)
            .collect()
    }

    /// Versions with more than one record in the history (a deploy recorded twice).
    pub fn duplicate_records(&self, pacticipant: &str) -> Vec<String> {
        let records = self.records(pacticipant);
        let mut duplicates: Vec<String> = records
            .iter()
            .filter(|(v, _)| records.iter().filter(|(w, _)| w == v).count() > 1)
            .map(|(v, _)| v.clone())
            .collect();
        duplicates.dedup();
        duplicates
    }

    /// Number of record-deployment requests the emulator saw.
    pub fn record_requests(&self) -> usize {
        self.emu()
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.contains("/deployed-versions/"))
            .count()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let (Some(emulator), Some(runtime)) = (self.emulator.take(), self.runtime.take()) {
            runtime.block_on(emulator.shutdown());
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

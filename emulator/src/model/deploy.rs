//! Environments, deployments and releases: validation, the auto-undeploy and
//! idempotency rules of record-deployment, and "what is in an environment".

use super::{
    DeployedVersion, Environment, FieldErrors, ReleasedVersion, State, display_name_for, new_uuid,
    now,
};

impl State {
    /// Finds an environment by uuid.
    pub fn environment(&self, uuid: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.uuid == uuid)
    }

    /// Finds an environment by name.
    pub fn environment_named(&self, name: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// Validates an environment body; `existing_uuid` is the environment being replaced (PUT).
    pub fn validate_environment(
        &self,
        body: &serde_json::Value,
        existing_uuid: Option<&str>,
    ) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let mut add = |k: &str, m: String| errors.entry(k.to_string()).or_default().push(m);
        match body.get("name") {
            None | Some(serde_json::Value::Null) => add("name", "is missing".into()),
            Some(serde_json::Value::String(n)) if n.trim().is_empty() => {
                add("name", "cannot be blank".into())
            }
            Some(serde_json::Value::String(n)) => {
                if n.contains(' ') {
                    add("name", "cannot contain spaces".into());
                }
                if n.contains('\n') {
                    add("name", "must be a single line".into());
                }
                if self
                    .environments
                    .iter()
                    .any(|e| &e.name == n && Some(e.uuid.as_str()) != existing_uuid)
                {
                    add(
                        "name",
                        format!("name '{n}' is already used by an existing environment."),
                    );
                }
            }
            Some(_) => add("name", "must be a string".into()),
        }
        match body.get("production") {
            Some(serde_json::Value::Bool(_)) => {}
            None | Some(serde_json::Value::Null) => add("production", "is missing".into()),
            Some(_) => add("production", "must be boolean".into()),
        }
        errors
    }

    /// Creates (or, with `uuid`, replaces) an environment from a validated body.
    pub fn upsert_environment(
        &mut self,
        body: &serde_json::Value,
        uuid: Option<&str>,
    ) -> Result<Environment, FieldErrors> {
        let errors = self.validate_environment(body, uuid);
        if !errors.is_empty() {
            return Err(errors);
        }
        let name = body
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_string();
        let display_name = match body.get("displayName").and_then(|d| d.as_str()) {
            Some(d) if !d.trim().is_empty() => d.to_string(),
            _ => display_name_for(&name),
        };
        let production = body
            .get("production")
            .and_then(|p| p.as_bool())
            .unwrap_or(false);
        let contacts = body.get("contacts").filter(|c| !c.is_null()).cloned();
        if let Some(env) = uuid.and_then(|u| self.environments.iter_mut().find(|e| e.uuid == u)) {
            env.name = name;
            env.display_name = display_name;
            env.production = production;
            env.contacts = contacts;
            env.updated_at = Some(now());
            return Ok(env.clone());
        }
        let env = Environment {
            uuid: new_uuid(),
            name,
            display_name,
            production,
            contacts,
            created_at: now(),
            updated_at: None,
        };
        self.environments.push(env.clone());
        Ok(env)
    }

    /// Deletes an environment; returns whether it existed.
    pub fn delete_environment(&mut self, uuid: &str) -> bool {
        let before = self.environments.len();
        self.environments.retain(|e| e.uuid != uuid);
        before != self.environments.len()
    }

    /// Records a deployment with the broker's rules: an identical current record
    /// (same version, environment and instance) is returned unchanged; otherwise
    /// every current record of the pacticipant in that environment and instance
    /// is undeployed and a new one is created.
    pub fn record_deployment(
        &mut self,
        pacticipant: &str,
        version: &str,
        env: &Environment,
        instance: Option<&str>,
    ) -> DeployedVersion {
        if let Some(same) = self.deployed.iter().find(|d| {
            d.currently_deployed
                && d.pacticipant == pacticipant
                && d.version == version
                && d.environment_uuid == env.uuid
                && d.application_instance.as_deref() == instance
        }) {
            return same.clone();
        }
        let at = now();
        for d in self.deployed.iter_mut().filter(|d| {
            d.currently_deployed
                && d.pacticipant == pacticipant
                && d.environment_uuid == env.uuid
                && d.application_instance.as_deref() == instance
        }) {
            d.currently_deployed = false;
            d.undeployed_at = Some(at.clone());
        }
        let order = self.next();
        let record = DeployedVersion {
            order,
            uuid: new_uuid(),
            pacticipant: pacticipant.to_string(),
            version: version.to_string(),
            environment_uuid: env.uuid.clone(),
            environment_name: env.name.clone(),
            application_instance: instance.map(str::to_string),
            currently_deployed: true,
            created_at: at,
            undeployed_at: None,
        };
        self.deployed.push(record.clone());
        record
    }

    /// Marks a deployment record as undeployed (no-op when already undeployed).
    pub fn undeploy(&mut self, uuid: &str) -> Option<DeployedVersion> {
        let d = self.deployed.iter_mut().find(|d| d.uuid == uuid)?;
        if d.currently_deployed {
            d.currently_deployed = false;
            d.undeployed_at = Some(now());
        }
        Some(d.clone())
    }

    /// Records a release; returns the record and whether it was created (false = already released).
    pub fn record_release(
        &mut self,
        pacticipant: &str,
        version: &str,
        env_uuid: &str,
    ) -> (ReleasedVersion, bool) {
        if let Some(r) = self.released.iter().find(|r| {
            r.pacticipant == pacticipant && r.version == version && r.environment_uuid == env_uuid
        }) {
            return (r.clone(), false);
        }
        let order = self.next();
        let r = ReleasedVersion {
            order,
            uuid: new_uuid(),
            pacticipant: pacticipant.to_string(),
            version: version.to_string(),
            environment_uuid: env_uuid.to_string(),
            currently_supported: true,
            created_at: now(),
            support_ended_at: None,
        };
        self.released.push(r.clone());
        (r, true)
    }

    /// Ends support of a release (no-op when already ended).
    pub fn end_support(&mut self, uuid: &str) -> Option<ReleasedVersion> {
        let r = self.released.iter_mut().find(|r| r.uuid == uuid)?;
        if r.currently_supported {
            r.currently_supported = false;
            r.support_ended_at = Some(now());
        }
        Some(r.clone())
    }

    /// Version numbers of a pacticipant currently deployed or released in an environment.
    pub fn versions_in_environment(&self, pacticipant: &str, env_uuid: &str) -> Vec<String> {
        let mut out: Vec<(u64, String)> = Vec::new();
        let deployed = self.deployed.iter().filter(|d| {
            d.currently_deployed && d.environment_uuid == env_uuid && d.pacticipant == pacticipant
        });
        let released = self.released.iter().filter(|r| {
            r.currently_supported && r.environment_uuid == env_uuid && r.pacticipant == pacticipant
        });
        for v in deployed
            .map(|d| &d.version)
            .chain(released.map(|r| &r.version))
        {
            if !out.iter().any(|(_, n)| n == v) {
                let order = self.version(pacticipant, v).map_or(0, |x| x.order);
                out.push((order, v.clone()));
            }
        }
        out.sort();
        out.into_iter().map(|(_, n)| n).collect()
    }

    /// Environments a version is currently deployed or released in.
    pub fn environments_of_version(&self, pacticipant: &str, version: &str) -> Vec<&Environment> {
        self.environments
            .iter()
            .filter(|e| {
                self.versions_in_environment(pacticipant, &e.uuid)
                    .iter()
                    .any(|v| v == version)
            })
            .collect()
    }
}

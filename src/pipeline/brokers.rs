//! Broker clients by broker section: the real cache of [`HttpBroker`]s and a fake for tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[cfg(any(test, feature = "test-support"))]
use crate::broker::FakeBroker;
use crate::broker::{self, Auth, HttpBroker, RequestObserver};
use crate::manifest::BrokerSpec;
use crate::secret::Secret;

use super::Brokers;

/// One [`HttpBroker`] per distinct broker section (URL, credentials source, CA), built on first
/// use so its HAL index and environment caches are shared by every reconcile.
#[derive(Default)]
pub struct HttpBrokers {
    clients: Mutex<BTreeMap<String, Arc<HttpBroker>>>,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl HttpBrokers {
    /// An empty cache; `observer` (the metrics) sees every broker request.
    pub fn new(observer: Option<Arc<dyn RequestObserver>>) -> Self {
        HttpBrokers {
            clients: Mutex::new(BTreeMap::new()),
            observer,
        }
    }
}

impl Brokers for HttpBrokers {
    type Client = HttpBroker;

    fn client(&self, spec: &BrokerSpec) -> Result<Arc<HttpBroker>, broker::Error> {
        // The key names where credentials come from, never their values.
        let key = serde_json::to_string(spec).unwrap_or_else(|_| spec.url.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut config = broker::Config::new(spec.url.clone());
        config.auth = auth_of(spec)?;
        config.ca_file = spec.ca_file.clone();
        config.trusted_origins = spec.trusted_origins.clone();
        let mut client = HttpBroker::new(config)?;
        if let Some(observer) = &self.observer {
            client = client.with_observer(observer.clone());
        }
        let client = Arc::new(client);
        clients.insert(key, client.clone());
        Ok(client)
    }
}

/// Reads the credentials a broker section names (files or environment variables).
pub fn auth_of(spec: &BrokerSpec) -> Result<Auth, broker::Error> {
    let secret_error = |e: crate::secret::Error| broker::Error::Config {
        detail: format!("broker credentials: {e}"),
    };
    let token = match (&spec.token_file, &spec.token_env) {
        (Some(path), _) => Some(Secret::from_file(path).map_err(secret_error)?),
        (None, Some(name)) => Some(Secret::from_env(name).map_err(secret_error)?),
        (None, None) => None,
    };
    if let Some(token) = token {
        return Ok(Auth::Bearer(token));
    }
    let password = match (&spec.password_file, &spec.password_env) {
        (Some(path), _) => Some(Secret::from_file(path).map_err(secret_error)?),
        (None, Some(name)) => Some(Secret::from_env(name).map_err(secret_error)?),
        (None, None) => None,
    };
    let Some(password) = password else {
        return Ok(Auth::None);
    };
    let username = match (&spec.username_file, &spec.username_env) {
        (Some(path), _) => Secret::from_file(path).map_err(secret_error)?,
        (None, Some(name)) => Secret::from_env(name).map_err(secret_error)?,
        (None, None) => {
            return Err(broker::Error::Config {
                detail: "broker password given without a username".into(),
            });
        }
    };
    Ok(Auth::Basic {
        username: username.expose().to_string(),
        password,
    })
}

/// Every broker section gets the same [`FakeBroker`] (test support).
#[cfg(any(test, feature = "test-support"))]
#[derive(Clone, Default)]
pub struct FakeBrokers(pub Arc<FakeBroker>);

#[cfg(any(test, feature = "test-support"))]
impl Brokers for FakeBrokers {
    type Client = FakeBroker;

    fn client(&self, _spec: &BrokerSpec) -> Result<Arc<FakeBroker>, broker::Error> {
        Ok(self.0.clone())
    }
}

//! Container events of Compose projects, pure: which Engine API events matter and what they say.
//!
//! The adapter subscribes to `/events` (see [`super::engine`]) and keeps only the events that
//! can change what runs or whether it is ready; the agent's watcher and the readiness loop
//! consume the result as [`ContainerEvent`]s. No process is spawned for it.

use std::collections::HashMap;

use bollard::models::{EventMessage, EventMessageTypeEnum};
use serde::{Deserialize, Serialize};

use super::argv::{PROJECT_LABEL, SERVICE_LABEL};

/// One event of a Compose-managed container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerEvent {
    /// The Compose project label.
    pub project: String,
    /// The Compose service label (empty when absent).
    pub service: String,
    /// The container id.
    pub container_id: String,
    /// The action without its detail: `start`, `die`, `health_status`, ...
    pub action: String,
    /// For `health_status`, the new status (`healthy`, `unhealthy`, `starting`).
    pub health: Option<String>,
}

/// Whether `action` (its part before `:`) can change what runs or whether it is ready;
/// noise such as `exec_start`, `top` or `attach` is not.
pub fn is_relevant_action(action: &str) -> bool {
    let action = action.split(':').next().unwrap_or(action).trim();
    matches!(
        action,
        "die"
            | "stop"
            | "kill"
            | "oom"
            | "destroy"
            | "create"
            | "start"
            | "restart"
            | "health_status"
            | "pause"
            | "unpause"
            | "rename"
    )
}

/// The [`ContainerEvent`] of one Engine API event: `None` for non-container events, containers
/// without the project label, and irrelevant actions.
pub fn event_from_message(message: &EventMessage) -> Option<ContainerEvent> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let action = message.action.as_deref()?;
    if !is_relevant_action(action) {
        return None;
    }
    let actor = message.actor.as_ref()?;
    let empty = HashMap::new();
    let attributes = actor.attributes.as_ref().unwrap_or(&empty);
    let project = attributes.get(PROJECT_LABEL).filter(|p| !p.is_empty())?;
    let (name, detail) = match action.split_once(':') {
        Some((name, detail)) => (name.trim(), Some(detail.trim())),
        None => (action.trim(), None),
    };
    Some(ContainerEvent {
        project: project.clone(),
        service: attributes.get(SERVICE_LABEL).cloned().unwrap_or_default(),
        container_id: actor.id.clone().unwrap_or_default(),
        action: name.to_string(),
        health: (name == "health_status")
            .then(|| detail.unwrap_or_default().to_string())
            .filter(|h| !h.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use bollard::models::EventActor;

    use super::*;

    fn message(typ: EventMessageTypeEnum, action: &str, labels: &[(&str, &str)]) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some("c0ffee".into()),
                attributes: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    const SHOP_WEB: &[(&str, &str)] = &[
        (PROJECT_LABEL, "shop"),
        (SERVICE_LABEL, "web"),
        ("name", "shop-web-1"),
    ];

    #[test]
    fn health_status_events_carry_the_new_status() {
        let event = event_from_message(&message(
            EventMessageTypeEnum::CONTAINER,
            "health_status: healthy",
            SHOP_WEB,
        ))
        .unwrap();
        assert_eq!(
            event,
            ContainerEvent {
                project: "shop".into(),
                service: "web".into(),
                container_id: "c0ffee".into(),
                action: "health_status".into(),
                health: Some("healthy".into()),
            }
        );
        let died =
            event_from_message(&message(EventMessageTypeEnum::CONTAINER, "die", SHOP_WEB)).unwrap();
        assert_eq!((died.action.as_str(), died.health), ("die", None));
    }

    #[test]
    fn noise_other_types_and_unlabelled_containers_are_dropped() {
        let exec = message(
            EventMessageTypeEnum::CONTAINER,
            "exec_start: sh -c true",
            SHOP_WEB,
        );
        assert_eq!(event_from_message(&exec), None);
        let network = message(EventMessageTypeEnum::NETWORK, "connect", SHOP_WEB);
        assert_eq!(event_from_message(&network), None);
        let plain = message(EventMessageTypeEnum::CONTAINER, "start", &[("name", "x")]);
        assert_eq!(event_from_message(&plain), None);
        let empty_project = message(
            EventMessageTypeEnum::CONTAINER,
            "start",
            &[(PROJECT_LABEL, "")],
        );
        assert_eq!(event_from_message(&empty_project), None);
    }
}

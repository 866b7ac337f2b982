//! `docker events` for Compose-managed containers: a long-running child whose lines become
//! project names. The agent restarts it with backoff when it ends.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::Error;

/// The argv of the events child (pure).
pub fn events_argv() -> Vec<String> {
    [
        "events",
        "--filter",
        "type=container",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{index .Actor.Attributes \"com.docker.compose.project\"}} {{.Action}}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The project name of one events line (`<project> <action>`), for actions that can change
/// what runs; `None` for noise such as `exec_start` or `top`.
pub fn project_of_line(line: &str) -> Option<String> {
    let (project, action) = line.trim().split_once(' ')?;
    let action = action.split(':').next().unwrap_or(action).trim();
    let relevant = matches!(
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
    );
    (relevant && !project.is_empty()).then(|| project.to_string())
}

/// Runs `docker events` until it ends or `tx` closes, sending the project of each relevant event.
pub async fn follow(tx: mpsc::UnboundedSender<String>) -> Result<(), Error> {
    let mut child = Command::new("docker")
        .args(events_argv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            command: "docker events".into(),
            source,
        })?;
    let Some(stdout) = child.stdout.take() else {
        return Ok(());
    };
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(project) = project_of_line(&line)
            && tx.send(project).is_err()
        {
            break;
        }
    }
    let _ = child.kill().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relevant_actions_name_their_project() {
        assert_eq!(project_of_line("shop die").as_deref(), Some("shop"));
        assert_eq!(
            project_of_line("shop health_status: unhealthy").as_deref(),
            Some("shop")
        );
        assert_eq!(project_of_line("shop exec_start: sh -c true"), None);
        assert_eq!(project_of_line(" die"), None);
        assert_eq!(project_of_line("garbage"), None);
    }
}

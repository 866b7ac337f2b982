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
///
/// The stream ends when the daemon stops or restarts (the CLI loses its connection); that is
/// an `Err` naming the exit status and stderr, so the caller logs why and follows again.
pub async fn follow(tx: mpsc::UnboundedSender<String>) -> Result<(), Error> {
    let command = format!("docker {}", events_argv().join(" "));
    let mut child = Command::new("docker")
        .args(events_argv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Ok(());
    };
    // Read stderr alongside: the CLI prints only a line or two, but a full pipe would block it.
    let stderr_reader = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut receiver_gone = false;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(project) = project_of_line(&line)
            && tx.send(project).is_err()
        {
            receiver_gone = true;
            break;
        }
    }
    if receiver_gone {
        let _ = child.kill().await;
        return Ok(());
    }
    // stdout closed: the CLI is exiting; a hung one is killed after a short wait.
    let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(Ok(status)) => status,
        _ => {
            let _ = child.kill().await;
            return Err(Error::Timeout {
                command,
                timeout: EXIT_WAIT,
            });
        }
    };
    let stderr = tokio::time::timeout(EXIT_WAIT, stderr_reader)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    Err(Error::Failed {
        command,
        status: match status.code() {
            Some(code) => format!("exit code {code}"),
            None => "killed by a signal".to_string(),
        },
        stderr_tail: match super::run::tail(&stderr, 5) {
            tail if tail.is_empty() => "(no output; the event stream ended)".to_string(),
            tail => tail,
        },
    })
}

/// How long an events child whose stream ended may take to exit.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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

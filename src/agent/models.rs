//! The agent's rendered Compose models, one per environment, rendered again only when one of
//! its input files changed ([`crate::docker::inputs`]): a no-op resync stats files and starts
//! no process, and a change of `compose.yaml`, `.env` or an included file is seen at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::docker::inputs::{self, InputStamp};
use crate::docker::{Applier, Project, RenderedModel};
use crate::error_chain;

/// Why a project has no model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderFailure {
    /// The Compose files do not render (Compose's message names the file and line); kept
    /// until an input file changes.
    Invalid(String),
    /// Compose could not be run (a timeout, a missing binary); retried on the next reconcile.
    Transient(String),
}

#[derive(Debug)]
struct Entry {
    project: Project,
    stamp: InputStamp,
    model: Result<Arc<RenderedModel>, String>,
}

/// The models, by environment name.
#[derive(Debug, Default)]
pub struct Models {
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl Models {
    /// The rendered model of environment `name` (project `project`): the cached one when no
    /// input file changed since it was rendered, else a new render.
    pub async fn get<C: Applier>(
        &self,
        compose: &C,
        name: &str,
        project: &Project,
    ) -> Result<Arc<RenderedModel>, RenderFailure> {
        if let Some(model) = self.fresh_model(name, project) {
            return model.map_err(RenderFailure::Invalid);
        }
        // Listed before rendering: an edit during the render makes the stamp stale, not lost.
        let files = inputs::inputs(project);
        let stamp = InputStamp::of(&files);
        let model = match compose.config(project).await {
            Ok(model) => Ok(Arc::new(model)),
            Err(error) if error.is_transient() => {
                return Err(RenderFailure::Transient(error_chain(&error)));
            }
            Err(error) => Err(error_chain(&error)),
        };
        let entry = Entry {
            project: project.clone(),
            stamp,
            model: model.clone(),
        };
        self.lock().insert(name.to_string(), entry);
        model.map_err(RenderFailure::Invalid)
    }

    /// The cached model of `name` when its input files are unchanged (`None`: never rendered,
    /// or stale).
    pub fn fresh(&self, name: &str, project: &Project) -> Option<Arc<RenderedModel>> {
        self.fresh_model(name, project).and_then(Result::ok)
    }

    /// Whether `name` must be rendered again: never rendered, another project, or an input
    /// file changed.
    pub fn stale(&self, name: &str, project: &Project) -> bool {
        self.fresh_model(name, project).is_none()
    }

    /// Forgets environments not in `keep` (removed manifests).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    /// Every directory holding an input file of a rendered model (what to watch).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .lock()
            .values()
            .flat_map(|entry| entry.stamp.dirs())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The cached render of `name` when its project and input stamps are unchanged (stats the
    /// input files; clones only a pointer).
    fn fresh_model(
        &self,
        name: &str,
        project: &Project,
    ) -> Option<Result<Arc<RenderedModel>, String>> {
        let entries = self.lock();
        let entry = entries.get(name)?;
        (entry.project == *project && entry.stamp.is_current()).then(|| entry.model.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

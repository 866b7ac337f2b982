//! Verify: readiness's last observation runs the pinned images (image ids change only by a
//! recreate, so no new observation is needed).

use super::super::StepFailure;
use super::super::run::Run;
use crate::docker::{Container, ContainerState, ImagePins, RenderedModel};
use crate::events::StepName;

impl<C, B, S> Run<'_, C, B, S> {
    /// The verify step over the pins of `services`.
    pub(in crate::pipeline) fn verify(
        &mut self,
        pins: &ImagePins,
        services: &[String],
    ) -> Result<(), StepFailure> {
        let started = self.start_step(StepName::Verify);
        let service_pins: ImagePins = services
            .iter()
            .filter_map(|s| pins.get(s).map(|i| (s.clone(), i.clone())))
            .collect();
        let verified = verify_pins(&service_pins, &self.model, &self.observed);
        self.check(StepName::Verify, started, verified)
    }
}

/// Checks that each pinned service's container runs the pinned image. A job that exited 0
/// counts: readiness accepted it as done.
fn verify_pins(
    pins: &ImagePins,
    model: &RenderedModel,
    containers: &[Container],
) -> Result<(), String> {
    for (service, image) in pins {
        let one_shot = model.get(service).is_some_and(|m| m.job);
        let running = containers
            .iter()
            .find(|c| &c.service == service && c.state.is_running())
            .or_else(|| {
                containers.iter().find(|c| {
                    &c.service == service
                        && one_shot
                        && c.state == ContainerState::Exited
                        && c.exit_code == 0
                })
            });
        match running {
            Some(container) if &container.image == image => {}
            Some(container) => {
                return Err(format!(
                    "service {service} runs {} ({}), not the pinned {image}",
                    container.image, container.image_id
                ));
            }
            None => return Err(format!("service {service} has no running container")),
        }
    }
    Ok(())
}

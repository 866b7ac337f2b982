//! The steps of a flow, one concern per file. A step observes, asks or changes one thing,
//! ends itself on the [`Run`](super::run::Run) (timing, events) and returns a typed result;
//! it never decides what happens next (that is the flow's job).

pub(super) mod apply;
pub(super) mod gate;
pub(super) mod observe;
pub(super) mod record;
pub(super) mod restore;
pub(super) mod smoke;
pub(super) mod verify;

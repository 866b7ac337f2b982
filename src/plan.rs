//! The pure planner: (manifest, applied state, observed containers, now) -> one action with a reason.

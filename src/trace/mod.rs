//! Explain one flow: what policy intends, what the captured dataplane does. (Being written.)
pub mod flow;
pub mod intent;
pub mod kernel;

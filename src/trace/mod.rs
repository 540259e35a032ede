//! Explain one flow: what policy intends, what the captured dataplane does. (Being written.)
pub mod sim;

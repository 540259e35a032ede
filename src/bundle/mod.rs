//! The only module that does IO: opens a bundle (directory, .tar, .tar.gz/.tgz, single file),
//! streams its entries once, reads `manifest.json`, and recognises each artifact's kind.
//! (Being written.)

pub mod kind;
pub use kind::ArtifactKind;

//! Compression: how a student is made from a teacher (chosen layers, pruned heads, neurons and
//! vocabulary, or a fresh shape; or a BiLSTM or CNN over its vocabulary). Model definitions
//! stay in `model`; this module only builds.

pub mod compact;
pub mod student;
pub mod vocab;

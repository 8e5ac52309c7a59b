//! Compression: how a student is made from a teacher (chosen layers, pruned heads, neurons and
//! vocabulary, or a fresh shape). Model definitions stay in `model`; this module only builds.

pub mod student;
pub mod vocab;

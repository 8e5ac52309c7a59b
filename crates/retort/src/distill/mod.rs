//! Knowledge distillation: loss terms, layer mapping, the weighted objective, the teacher cache.

pub mod loss;
pub mod mapping;
pub mod objective;
pub mod run;
pub mod teacher_cache;
pub mod terms;

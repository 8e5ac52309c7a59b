//! Knowledge distillation: `retort distill` (teacher, student, transfer set, objective, then
//! the trainer) and the teacher's logits cached on disk.

pub mod run;
pub mod teacher_cache;

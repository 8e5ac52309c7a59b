//! Training: run configs, the optimiser and learning-rate schedule, and the training loop.

pub mod config;
pub mod finetune;
pub mod groups;
pub mod optim;
pub mod run_dir;
pub mod step;
pub mod tasks;
pub mod trainer;
pub mod translator;

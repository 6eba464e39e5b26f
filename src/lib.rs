//! bramble: runs Ansible playbooks over SSH with no Python on the targets, and bakes
//! Raspberry Pi images with the same roles.
//!
//! The modules follow the pipeline: inventory → playbook → template → executor → modules →
//! connection → output.

pub mod cli;
pub mod config;
pub mod connection;
pub mod error;
pub mod executor;
pub mod image;
pub mod inventory;
pub mod lab;
pub mod modules;
pub mod output;
pub mod password;
pub mod playbook;
pub mod template;
pub mod vault;
pub mod yaml;

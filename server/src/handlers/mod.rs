pub mod access;
pub mod health;
pub mod json;
pub mod passkeys;
pub mod session;
pub mod web;

pub mod health;
pub mod web;

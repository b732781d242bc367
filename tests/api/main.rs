//! The integration suite: one binary, each test against its own running service and its own
//! database (a fresh SQLite file, or a fresh PostgreSQL database when
//! `CONSENTRY_TEST_DATABASE_URL` points at a server).

mod support;

mod age;
mod audit;
mod auth;
mod banner;
mod cli;
mod consent;
mod console;
mod emails;
mod errors;
mod group;
mod hooks;
mod leases;
mod metrics;
mod notify;
mod policies;
mod portal;
mod purge;
mod races;
mod requests;
mod retention;
mod signin;
mod systems;
mod words;

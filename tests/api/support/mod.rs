//! What the tests share: the running app and its client (`app`), a browser without JavaScript
//! (`browser`), the common fixture (`fixtures`), console accounts (`staff`), a real SMTP server
//! (`smtp`) and a main app receiving webhooks (`webhooks`).

mod app;
mod browser;
mod fixtures;
mod smtp;
mod staff;
mod webhooks;

pub(crate) use app::*;
pub(crate) use browser::*;
pub(crate) use fixtures::*;
pub(crate) use smtp::*;
pub(crate) use staff::*;
pub(crate) use webhooks::*;

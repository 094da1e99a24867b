//! HTTP serving: the connection ([`server`]), the per-request pipeline ([`handler`]) with its
//! filter [`chain`], sending upstream with retries ([`forward`]), and local answers ([`local`]).

pub mod body;
pub mod chain;
pub mod forward;
pub mod handler;
pub mod local;
pub mod server;
pub mod upgrade;

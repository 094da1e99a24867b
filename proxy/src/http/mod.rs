//! HTTP serving: HTTP/1.1 connections on the [`fast`] path while their requests allow, else
//! hyper's ([`server`]), the per-request pipeline ([`handler`]) with its
//! filter [`chain`], sending upstream with retries ([`forward`]), and local answers ([`local`]).

pub mod body;
pub mod chain;
pub mod fast;
pub mod forward;
pub mod handler;
pub mod local;
pub mod server;
pub mod upgrade;

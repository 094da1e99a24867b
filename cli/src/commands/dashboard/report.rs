//! Telling the user about losing and regaining the API server once per outage, not once per
//! connection or retry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Reporter {
    lost: Arc<AtomicBool>,
}

impl Reporter {
    pub fn api_server_lost(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            eprintln!("lost the connection to the API server ({why}); retrying with backoff");
        }
    }

    pub fn api_server_back(&self) {
        if self.lost.swap(false, Ordering::SeqCst) {
            eprintln!("the API server answers again; forwarding resumed");
        }
    }
}

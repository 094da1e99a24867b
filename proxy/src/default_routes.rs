//! The names of services no VirtualService claims, for routing them to themselves.
//!
//! Such a service routes every request to its own endpoints on the port asked for. Copying
//! that route into every port's route table under each of the service's names (host,
//! aliases, addresses) cost a table entry and a key per name and port, most of a sidecar's
//! route memory in a large mesh; this index holds each name once and the snapshot checks the
//! port when a request is routed.

use rustc_hash::FxHashMap;

/// Service names (lower case) to the services that have them, in config order.
#[derive(Default)]
pub struct DefaultRoutes {
    /// The first service with each name: all there is almost always.
    first: FxHashMap<Box<str>, u32>,
    /// Later services with a name already taken, which may still own it on other ports.
    more: FxHashMap<Box<str>, Vec<u32>>,
}

impl DefaultRoutes {
    pub fn insert(&mut self, name: &str, service: u32) {
        let name = name.to_ascii_lowercase();
        match self.first.get(name.as_str()) {
            None => {
                self.first.insert(name.into_boxed_str(), service);
            }
            Some(&s) if s == service => {}
            Some(_) => {
                let later = self.more.entry(name.into_boxed_str()).or_default();
                if !later.contains(&service) {
                    later.push(service);
                }
            }
        }
    }

    /// Done inserting: drop the spare room of growth.
    pub fn finish(&mut self) {
        self.first.shrink_to_fit();
        self.more.shrink_to_fit();
    }

    /// The services named `host` (lower case, no port), first claimer first.
    pub fn services<'a>(&'a self, host: &str) -> impl Iterator<Item = usize> + 'a {
        let first = self.first.get(host).copied();
        let more = first
            .and_then(|_| self.more.get(host))
            .map(Vec::as_slice)
            .unwrap_or_default();
        first
            .into_iter()
            .chain(more.iter().copied())
            .map(|i| i as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_every_service_that_has_it_in_order() {
        let mut d = DefaultRoutes::default();
        d.insert("Reviews.default", 0);
        d.insert("reviews", 0);
        d.insert("reviews", 3);
        d.insert("reviews", 1);
        d.insert("reviews", 3);
        d.finish();
        assert_eq!(d.services("reviews").collect::<Vec<_>>(), [0, 3, 1]);
        assert_eq!(d.services("reviews.default").collect::<Vec<_>>(), [0]);
        assert_eq!(d.services("ratings").count(), 0);
    }
}

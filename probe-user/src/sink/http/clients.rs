//! How many connections each client holds, so one client cannot take every slot: a local
//! user (named by the kernel) counts as one client however many addresses it connects
//! from, a remote client by its address.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Client {
    Uid(u32),
    Address(IpAddr),
}

#[derive(Clone, Default)]
pub(super) struct Clients {
    held: Arc<Mutex<HashMap<Client, usize>>>,
}

/// One connection's place in its client's count; given back when dropped.
pub(super) struct Slot {
    clients: Clients,
    client: Client,
}

impl Clients {
    /// A slot for `client`, or None when it already holds `max`.
    pub(super) fn take(&self, client: Client, max: usize) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(client).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(Slot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.clients.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_gets_it_back() {
        let clients = Clients::default();
        let a = Client::Uid(1000);
        let held: Vec<Slot> = (0..3).map(|_| clients.take(a, 3).unwrap()).collect();
        assert!(
            clients.take(a, 3).is_none(),
            "a fourth slot for the same user"
        );
        assert!(
            clients.take(Client::Uid(0), 3).is_some(),
            "another user is not held up"
        );
        drop(held);
        assert!(clients.take(a, 3).is_some());
        assert!(
            clients.held.lock().unwrap().len() <= 1,
            "counts at zero are forgotten"
        );
    }
}

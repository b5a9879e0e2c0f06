//! Who is whose child, by the `ppid` each tracked process holds, so that an exit finds the
//! children it orphans without a scan of every process: at 50,000 tracked processes a mass
//! exit spent 37-49% of hupwatch's CPU in that scan (quadratic in the exits) and fell
//! behind the ring buffer (cargo xtask bench, scale).
use std::collections::{HashMap, HashSet, hash_map::Entry};

#[derive(Debug, Default)]
pub(super) struct ByParent {
    children: HashMap<u32, HashSet<u32>>,
}

impl ByParent {
    pub(super) fn add(&mut self, ppid: u32, pid: u32) {
        self.children.entry(ppid).or_default().insert(pid);
    }

    pub(super) fn remove(&mut self, ppid: u32, pid: u32) {
        if let Entry::Occupied(mut children) = self.children.entry(ppid) {
            children.get_mut().remove(&pid);
            if children.get().is_empty() {
                children.remove();
            }
        }
    }

    /// `pid`'s ppid changed from `from` to `to`.
    pub(super) fn moved(&mut self, pid: u32, from: u32, to: u32) {
        if from != to {
            self.remove(from, pid);
            self.add(to, pid);
        }
    }

    /// The processes whose ppid is `ppid`, itself excluded (a pid that is its own parent
    /// is a placeholder, not a child).
    pub(super) fn children(&self, ppid: u32) -> Vec<u32> {
        self.children.get(&ppid).map_or_else(Vec::new, |children| {
            children
                .iter()
                .copied()
                .filter(|&pid| pid != ppid)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut pids: Vec<u32>) -> Vec<u32> {
        pids.sort_unstable();
        pids
    }

    #[test]
    fn children_follow_adds_moves_and_removals() {
        let mut index = ByParent::default();
        index.add(1, 10);
        index.add(1, 11);
        index.add(10, 12);
        assert_eq!(sorted(index.children(1)), vec![10, 11]);
        index.moved(12, 10, 1);
        assert_eq!(index.children(10), Vec::<u32>::new());
        assert_eq!(sorted(index.children(1)), vec![10, 11, 12]);
        index.remove(1, 11);
        assert_eq!(sorted(index.children(1)), vec![10, 12]);
        index.add(7, 7);
        assert_eq!(index.children(7), Vec::<u32>::new());
        index.remove(7, 7);
        assert!(!index.children.contains_key(&7) && !index.children.contains_key(&10));
    }
}

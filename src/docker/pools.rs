//! Room in the daemon's address pools: how many more bridge networks (one per Compose project)
//! the daemon can create. A default Docker 20.10 has two pools, `172.17.0.0/16` split into /16
//! networks (172.17 to 172.31: 15) and `192.168.0.0/16` split into /20 networks (16): 31 in
//! all, the `bridge` network included. `default-address-pools` in `daemon.json` replaces them.

use std::net::Ipv4Addr;

use super::engine::DockerEngine;
use super::{Error, Result};

/// One address pool: networks of prefix length `size` carved out of `base/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    /// The pool's base address.
    pub base: Ipv4Addr,
    /// The pool's prefix length.
    pub prefix: u8,
    /// The prefix length of each network taken from it.
    pub size: u8,
}

/// Docker's built-in pools, used when `daemon.json` sets none.
pub const DEFAULT_POOLS: [AddressPool; 2] = [
    AddressPool {
        base: Ipv4Addr::new(172, 17, 0, 0),
        prefix: 12,
        size: 16,
    },
    AddressPool {
        base: Ipv4Addr::new(192, 168, 0, 0),
        prefix: 16,
        size: 20,
    },
];

/// How many networks the pools hold and how many of them the existing networks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolRoom {
    /// Networks the pools can hold in all.
    pub capacity: u64,
    /// Existing networks whose subnet lies in a pool.
    pub used: u64,
}

impl PoolRoom {
    /// Networks that can still be created.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}

impl AddressPool {
    fn networks(&self) -> u64 {
        1u64 << self.size.saturating_sub(self.prefix).min(32)
    }

    fn contains(&self, address: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(address) & mask == u32::from(self.base) & mask
    }
}

/// The pools' capacity (the default 172.17/12 pool starts at 172.17, so 15 of its 16 /16s) and
/// how many of `subnets` (CIDR strings; IPv6 and garbage are skipped) lie in them. Pure.
pub fn pool_room(pools: &[AddressPool], subnets: &[String]) -> PoolRoom {
    let capacity = pools
        .iter()
        .map(|pool| match *pool == DEFAULT_POOLS[0] {
            true => pool.networks() - 1,
            false => pool.networks(),
        })
        .sum();
    let used = subnets
        .iter()
        .filter_map(|cidr| cidr.split('/').next()?.parse::<Ipv4Addr>().ok())
        .filter(|address| pools.iter().any(|pool| pool.contains(*address)))
        .count() as u64;
    PoolRoom { capacity, used }
}

/// The pools of `daemon.json` text (`default-address-pools`: `[{"base": "10.0.0.0/8", "size":
/// 24}]`), `None` when it sets none.
pub fn pools_of_daemon_json(text: &str) -> std::result::Result<Option<Vec<AddressPool>>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(list) = value.get("default-address-pools") else {
        return Ok(None);
    };
    let list = list
        .as_array()
        .ok_or("default-address-pools is not a list")?;
    let mut pools = Vec::new();
    for entry in list {
        let base = entry["base"].as_str().ok_or("a pool without base")?;
        let (address, prefix) = base.split_once('/').ok_or("a base without /prefix")?;
        let base = address.parse().map_err(|_| format!("bad base {address}"))?;
        let prefix = prefix
            .parse()
            .map_err(|_| format!("bad prefix in {address}"))?;
        let size = entry["size"].as_u64().ok_or("a pool without size")?;
        pools.push(AddressPool {
            base,
            prefix,
            size: u8::try_from(size).map_err(|_| "size out of range")?,
        });
    }
    Ok(Some(pools))
}

impl DockerEngine {
    /// The IPv4 and IPv6 subnets of every network on the host.
    pub async fn network_subnets(&self) -> Result<Vec<String>> {
        let networks = (self.client().await?)
            .list_networks(None)
            .await
            .map_err(|e| Error::engine("list networks", e))?;
        Ok(networks
            .iter()
            .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
            .flatten()
            .filter_map(|c| c.subnet.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pools_hold_31_networks_and_count_what_lies_in_them() {
        let subnets: Vec<String> = [
            "172.17.0.0/16",
            "172.18.0.0/16",
            "192.168.16.0/20",
            "10.9.0.0/24",
            "fd00::/64",
        ]
        .map(String::from)
        .to_vec();
        let room = pool_room(&DEFAULT_POOLS, &subnets);
        assert_eq!(
            room,
            PoolRoom {
                capacity: 31,
                used: 3
            }
        );
        assert_eq!(room.free(), 28);
    }

    #[test]
    fn daemon_json_pools_replace_the_defaults() {
        let json = r#"{"default-address-pools": [{"base": "10.200.0.0/16", "size": 24}]}"#;
        let pools = pools_of_daemon_json(json).unwrap().unwrap();
        let room = pool_room(
            &pools,
            &["10.200.3.0/24".to_string(), "172.17.0.0/16".to_string()],
        );
        assert_eq!(
            room,
            PoolRoom {
                capacity: 256,
                used: 1
            }
        );
        assert_eq!(pools_of_daemon_json(r#"{"debug": true}"#).unwrap(), None);
        assert!(pools_of_daemon_json(r#"{"default-address-pools": [{"size": 24}]}"#).is_err());
    }
}

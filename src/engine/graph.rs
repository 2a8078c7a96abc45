//! A directed acyclic graph of node ids. Edges point from a node to what it depends on.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone)]
pub struct Graph {
    /// node -> the nodes it depends on. Ordered, so every walk is reproducible.
    deps: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("node '{0}' is declared twice")]
    Duplicate(String),
    #[error("node '{node}' depends on '{missing}', which is not in the graph")]
    UnknownDependency { node: String, missing: String },
    #[error("the graph has a cycle through: {0}")]
    Cycle(String),
}

impl Graph {
    pub fn new<I, S, D>(nodes: I) -> Result<Self, GraphError>
    where
        I: IntoIterator<Item = (S, D)>,
        S: Into<String>,
        D: IntoIterator,
        D::Item: Into<String>,
    {
        let mut deps = BTreeMap::new();
        for (id, ds) in nodes {
            let id = id.into();
            let ds: BTreeSet<String> = ds.into_iter().map(Into::into).collect();
            if deps.insert(id.clone(), ds).is_some() {
                return Err(GraphError::Duplicate(id));
            }
        }
        for (node, ds) in &deps {
            if let Some(missing) = ds.iter().find(|d| !deps.contains_key(*d)) {
                return Err(GraphError::UnknownDependency { node: node.clone(), missing: missing.clone() });
            }
        }
        let graph = Graph { deps };
        graph.topological_order()?;
        Ok(graph)
    }

    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.deps.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.deps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deps.is_empty()
    }

    pub fn dependencies(&self, node: &str) -> impl Iterator<Item = &str> {
        self.deps.get(node).into_iter().flatten().map(String::as_str)
    }

    /// The same nodes with every edge turned round: what a destroy walks.
    pub fn reversed(&self) -> Graph {
        let mut deps: BTreeMap<String, BTreeSet<String>> =
            self.deps.keys().map(|k| (k.clone(), BTreeSet::new())).collect();
        for (node, ds) in &self.deps {
            for d in ds {
                deps.entry(d.clone()).or_default().insert(node.clone());
            }
        }
        Graph { deps }
    }

    /// Kahn's algorithm; errors name the nodes left in a cycle.
    pub fn topological_order(&self) -> Result<Vec<String>, GraphError> {
        let mut remaining: BTreeMap<&str, usize> = self.deps.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        let mut order = Vec::with_capacity(self.deps.len());
        loop {
            let ready: Vec<&str> = remaining.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
            if ready.is_empty() {
                break;
            }
            for r in ready {
                remaining.remove(r);
                order.push(r.to_string());
                for (node, ds) in &self.deps {
                    if ds.contains(r) {
                        if let Some(n) = remaining.get_mut(node.as_str()) {
                            *n -= 1;
                        }
                    }
                }
            }
        }
        if remaining.is_empty() {
            Ok(order)
        } else {
            Err(GraphError::Cycle(remaining.keys().copied().collect::<Vec<_>>().join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> Result<Graph, GraphError> {
        Graph::new(edges.iter().map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect::<Vec<_>>())))
    }

    #[test]
    fn a_cycle_is_refused_naming_its_nodes() {
        let err = g(&[("a", &["b"]), ("b", &["a"]), ("c", &[])]).unwrap_err();
        assert_eq!(err, GraphError::Cycle("a, b".into()));
    }

    #[test]
    fn an_unknown_dependency_is_refused() {
        assert!(matches!(g(&[("a", &["zzz"])]), Err(GraphError::UnknownDependency { .. })));
    }

    #[test]
    fn reversing_turns_every_edge_round() {
        let r = g(&[("vpc", &[]), ("subnets", &["vpc"])]).unwrap().reversed();
        assert_eq!(r.dependencies("vpc").collect::<Vec<_>>(), vec!["subnets"]);
        assert_eq!(r.dependencies("subnets").count(), 0);
    }

    #[test]
    fn topological_order_puts_dependencies_first() {
        let order = g(&[("c", &["b"]), ("b", &["a"]), ("a", &[])]).unwrap().topological_order().unwrap();
        assert_eq!(order, vec!["a", "b", "c"]);
    }
}

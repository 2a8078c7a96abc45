//! THE payment stack: which resources it has, and what each depends on. Reading this file shows
//! the architecture top to bottom; each node's code is in `resources/` under its id.
//!
//!   kms.key                         customer-managed key, rotation on, alias/payments-<suffix>
//!   network.vpc                     VPC, DNS on
//!   ├─ network.subnets              public / private / database subnet in each of 3 AZs
//!   ├─ network.igw                  internet gateway (public tier)
//!   ├─ network.security-groups      functions → database on 5432 only
//!   ├─ network.nacls                per-tier network ACLs (database: 5432 from private only)
//!   network.eip                     the NAT gateway's fixed egress address
//!   network.nat  (subnets, eip, igw)            one NAT gateway in public-1
//!   network.route-tables (vpc, subnets, igw, nat)  public → IGW, private → NAT, database → nowhere
//!   network.endpoints (vpc, route-tables)       S3 and DynamoDB gateway endpoints, private tier

use crate::engine::{Graph, GraphError};
use crate::resources::{kms, network, Node};
use std::sync::Arc;

pub struct Stack {
    pub nodes: Vec<Arc<dyn Node>>,
}

impl Stack {
    pub fn payments() -> Stack {
        let nodes: Vec<Arc<dyn Node>> = vec![
            Arc::new(kms::Key),
            Arc::new(network::vpc::Vpc),
            Arc::new(network::subnets::Subnets),
            Arc::new(network::igw::InternetGatewayNode),
            Arc::new(network::eip::ElasticIp),
            Arc::new(network::nat::NatGatewayNode),
            Arc::new(network::route_tables::RouteTables),
            Arc::new(network::nacls::NetworkAcls),
            Arc::new(network::security_groups::SecurityGroups),
            Arc::new(network::endpoints::GatewayEndpoints),
        ];
        Stack { nodes }
    }

    pub fn graph(&self) -> Result<Graph, GraphError> {
        Graph::new(self.nodes.iter().map(|n| (n.id(), n.depends_on().iter().copied())))
    }

    pub fn node(&self, id: &str) -> Option<&Arc<dyn Node>> {
        self.nodes.iter().find(|n| n.id() == id)
    }
}

/// The operator-facing outputs (`<suffix>.outputs.json`): name, node, and the node's output key.
pub const OPERATOR_OUTPUTS: &[(&str, &str, &str)] = &[
    ("kms_key_arn", kms::ID, "key_arn"),
    ("kms_key_alias", kms::ID, "alias"),
    ("vpc_id", network::vpc::ID, "vpc_id"),
    ("vpc_cidr", network::vpc::ID, "vpc_cidr"),
    ("availability_zones", network::subnets::ID, "availability_zones"),
    ("public_subnet_ids", network::subnets::ID, "public_subnet_ids"),
    ("private_subnet_ids", network::subnets::ID, "private_subnet_ids"),
    ("database_subnet_ids", network::subnets::ID, "database_subnet_ids"),
    ("nat_gateway_id", network::nat::ID, "nat_gateway_id"),
    ("nat_public_ip", network::eip::ID, "public_ip"),
    ("functions_security_group_id", network::security_groups::ID, "functions_sg_id"),
    ("database_security_group_id", network::security_groups::ID, "database_sg_id"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_is_a_valid_graph_whose_ids_name_their_modules() {
        let stack = Stack::payments();
        let graph = stack.graph().expect("the payment stack must be acyclic");
        assert_eq!(graph.len(), stack.nodes.len());
        for n in &stack.nodes {
            assert!(n.id().starts_with("kms.") || n.id().starts_with("network."), "{}", n.id());
        }
    }

    #[test]
    fn every_operator_output_comes_from_a_node_of_the_stack() {
        let stack = Stack::payments();
        for (name, node, _) in OPERATOR_OUTPUTS {
            assert!(stack.node(node).is_some(), "{name} names unknown node {node}");
        }
    }
}

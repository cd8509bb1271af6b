//! ONNX's model, graph, node and tensor messages, over [`super::proto`]:
//! the parts frameflow's rewrites read and change, with everything else
//! kept as it came.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::proto::{Message, Value, write_bytes, write_message};

// Field numbers from onnx.proto3.
const MODEL_IR_VERSION: u32 = 1;
const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;
const NODE_INPUT: u32 = 1;
const NODE_OUTPUT: u32 = 2;
const NODE_NAME: u32 = 3;
const NODE_OP_TYPE: u32 = 4;
const NODE_ATTRIBUTE: u32 = 5;
const NODE_DOMAIN: u32 = 7;
const ATTR_NAME: u32 = 1;
const ATTR_F: u32 = 2;
const ATTR_I: u32 = 3;
const ATTR_S: u32 = 4;
const ATTR_T: u32 = 5;
const ATTR_G: u32 = 6;
const ATTR_GRAPHS: u32 = 11;
const ATTR_INTS: u32 = 8;
const ATTR_TYPE: u32 = 20;
const ATTR_TYPE_FLOAT: u64 = 1;
const ATTR_TYPE_INT: u64 = 2;
const ATTR_TYPE_INTS: u64 = 7;
const TENSOR_DIMS: u32 = 1;
const TENSOR_DATA_TYPE: u32 = 2;
const TENSOR_FLOAT_DATA: u32 = 4;
const TENSOR_INT64_DATA: u32 = 7;
const TENSOR_NAME: u32 = 8;
const TENSOR_RAW_DATA: u32 = 9;
const TENSOR_DATA_LOCATION: u32 = 14;
const FLOAT: u64 = 1;
const INT64: u64 = 7;
const EXTERNAL: u64 = 1;

/// A model: its graph, and the rest of it as it came, borrowed from the
/// bytes it was read from.
pub(crate) struct Model<'a> {
    rest: Message<'a>,
    pub(crate) graph: Graph<'a>,
}

impl<'a> Model<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Model<'a>, String> {
        let mut rest = Message::parse(bytes)?;
        let graph = *rest.take_bytes(MODEL_GRAPH)?.last().ok_or("the model has no graph")?;
        // From IR version 4 an initializer that is also a graph input is
        // only a default the caller may replace: not a constant.
        let overridable = rest.varint(MODEL_IR_VERSION).is_some_and(|v| v >= 4);
        let graph = Graph::parse(graph, overridable)?;
        Ok(Model { rest, graph })
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let graph = self.graph.to_bytes();
        let mut model = self.rest.to_bytes();
        model.reserve(graph.len() + 16);
        write_bytes(&mut model, MODEL_GRAPH, &graph);
        model
    }
}

/// A graph's nodes in order, its initializers, and the rest as it came
/// (less the inferred shapes, which a rewrite may make wrong: ONNX Runtime
/// infers them again).
pub(crate) struct Graph<'a> {
    pub(crate) nodes: Vec<Node<'a>>,
    initializers: Vec<Message<'a>>,
    by_name: HashMap<String, usize>,
    rest: Message<'a>,
    fresh: usize,
}

impl<'a> Graph<'a> {
    fn parse(bytes: &'a [u8], overridable: bool) -> Result<Graph<'a>, String> {
        let mut rest = Message::parse(bytes)?;
        let nodes = rest.take_bytes(GRAPH_NODE)?.into_iter().map(Node::parse).collect::<Result<Vec<_>, _>>()?;
        let initializers =
            rest.take_bytes(GRAPH_INITIALIZER)?.into_iter().map(Message::parse).collect::<Result<Vec<_>, _>>()?;
        let inputs: HashSet<String> = if overridable {
            rest.bytes(GRAPH_INPUT).filter_map(|v| Message::parse(v).ok()).map(|v| v.string(1)).collect()
        } else {
            HashSet::new()
        };
        let by_name = initializers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.string(TENSOR_NAME), i))
            .filter(|(name, _)| !inputs.contains(name))
            .collect();
        rest.remove(GRAPH_VALUE_INFO);
        Ok(Graph { nodes, initializers, by_name, rest, fresh: 0 })
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut graph = self.rest.to_bytes();
        for node in &self.nodes {
            write_message(&mut graph, GRAPH_NODE, &node.to_message());
        }
        for tensor in &self.initializers {
            write_message(&mut graph, GRAPH_INITIALIZER, tensor);
        }
        graph
    }

    /// The names of the graph's outputs.
    pub(crate) fn outputs(&self) -> Vec<String> {
        self.rest.bytes(GRAPH_OUTPUT).filter_map(|v| Message::parse(v).ok()).map(|v| v.string(1)).collect()
    }

    /// For each tensor, the node that makes it.
    pub(crate) fn producers(&self) -> HashMap<String, usize> {
        let mut producers = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for output in &node.outputs {
                producers.insert(output.clone(), i);
            }
        }
        producers
    }

    /// For each tensor, the nodes that read it (once per reading input).
    pub(crate) fn consumers(&self) -> HashMap<String, Vec<usize>> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for input in node.inputs.iter().filter(|input| !input.is_empty()) {
                consumers.entry(input.clone()).or_default().push(i);
            }
        }
        consumers
    }

    /// Whether any initializer or constant keeps its values in another
    /// file.
    pub(crate) fn has_external_data(&self) -> bool {
        let external = |t: &Message<'_>| t.varint(TENSOR_DATA_LOCATION) == Some(EXTERNAL);
        let constants = self.nodes.iter().filter(|n| n.op == "Constant").filter_map(|n| n.tensor_message("value"));
        self.initializers.iter().any(external) || constants.into_iter().any(|t| external(&t))
    }

    /// Whether any node holds a graph of its own (`If`, `Loop`, `Scan`),
    /// whose nodes may read this graph's tensors by name.
    pub(crate) fn has_subgraphs(&self) -> bool {
        let holds_graph = |a: &Message<'_>| a.bytes(ATTR_G).next().is_some() || a.bytes(ATTR_GRAPHS).next().is_some();
        self.nodes.iter().any(|n| n.attributes.iter().any(holds_graph))
    }

    /// Whether `name` is an initializer or a `Constant` node's output.
    pub(crate) fn is_constant(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.constant_node(name).is_some()
    }

    fn constant_node(&self, name: &str) -> Option<Message<'_>> {
        let node = self.nodes.iter().find(|n| n.op == "Constant" && n.outputs.first().is_some_and(|o| o == name))?;
        node.tensor_message("value")
    }

    fn tensor_message(&self, name: &str) -> Option<Cow<'_, Message<'_>>> {
        match self.by_name.get(name) {
            Some(&i) => self.initializers.get(i).map(Cow::Borrowed),
            None => self.constant_node(name).map(Cow::Owned),
        }
    }

    /// The shape of the constant `name`, without reading its values.
    pub(crate) fn constant_dims(&self, name: &str) -> Option<Vec<usize>> {
        dims(self.tensor_message(name)?.as_ref())
    }

    /// The constant float tensor `name`, if it is one and is stored in the
    /// model file.
    pub(crate) fn floats(&self, name: &str) -> Option<Tensor> {
        float_tensor(self.tensor_message(name)?.as_ref())
    }

    /// The constant 64-bit integer tensor `name`, flattened.
    pub(crate) fn int64s(&self, name: &str) -> Option<Vec<i64>> {
        let tensor = self.tensor_message(name)?;
        if tensor.varint(TENSOR_DATA_TYPE) != Some(INT64) || tensor.varint(TENSOR_DATA_LOCATION) == Some(EXTERNAL) {
            return None;
        }
        let values: Vec<i64> = match tensor.bytes(TENSOR_RAW_DATA).last() {
            Some(raw) => raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default())).collect(),
            None => tensor.varints(TENSOR_INT64_DATA).ok()?.into_iter().map(|v| v as i64).collect(),
        };
        (values.len() == dims(&tensor)?.iter().product::<usize>()).then_some(values)
    }

    /// The one value of a constant float tensor of one element and rank 0
    /// or 1 (a higher rank would raise the rank of what it is broadcast
    /// with).
    pub(crate) fn scalar(&self, name: &str) -> Option<f32> {
        if self.constant_dims(name)?.len() > 1 {
            return None;
        }
        self.floats(name).filter(|t| t.values.len() == 1).map(|t| t.values[0])
    }

    /// Adds `tensor` as a new initializer named after `hint`; its name.
    pub(crate) fn add_initializer(&mut self, hint: &str, tensor: &Tensor) -> String {
        let name = self.fresh_name(hint);
        self.add_named_initializer(&name, tensor);
        name
    }

    fn add_named_initializer(&mut self, name: &str, tensor: &Tensor) {
        let mut message = Message::default();
        message.push_varints(TENSOR_DIMS, tensor.dims.iter().map(|&d| d as u64));
        message.push(TENSOR_DATA_TYPE, Value::Varint(FLOAT));
        message.push_string(TENSOR_NAME, name);
        let raw = tensor.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        message.push(TENSOR_RAW_DATA, Value::Bytes(Cow::Owned(raw)));
        self.by_name.insert(name.to_owned(), self.initializers.len());
        self.initializers.push(message);
    }

    /// A tensor or node name no other has.
    pub(crate) fn fresh_name(&mut self, hint: &str) -> String {
        loop {
            self.fresh += 1;
            let name = format!("{hint}/frameflow{}", self.fresh);
            if !self.by_name.contains_key(&name)
                && !self.nodes.iter().any(|n| n.name == name || n.outputs.contains(&name))
            {
                return name;
            }
        }
    }
}

/// A float tensor stored in the model file.
fn float_tensor(tensor: &Message<'_>) -> Option<Tensor> {
    if tensor.varint(TENSOR_DATA_TYPE) != Some(FLOAT) || tensor.varint(TENSOR_DATA_LOCATION) == Some(EXTERNAL) {
        return None;
    }
    let dims = dims(tensor)?;
    let values: Vec<f32> = match tensor.bytes(TENSOR_RAW_DATA).last() {
        Some(raw) => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        None => tensor.fixed32s(TENSOR_FLOAT_DATA).into_iter().map(f32::from_bits).collect(),
    };
    (values.len() == dims.iter().product::<usize>()).then_some(Tensor { dims, values })
}

fn dims(tensor: &Message<'_>) -> Option<Vec<usize>> {
    tensor.varints(TENSOR_DIMS).ok()?.into_iter().map(|d| usize::try_from(d as i64).ok()).collect()
}

/// A dense float tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub(crate) dims: Vec<usize>,
    pub(crate) values: Vec<f32>,
}

/// A node: what the rewrites read, and the rest as it came.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    pub(crate) inputs: Vec<String>,
    pub(crate) outputs: Vec<String>,
    pub(crate) name: String,
    pub(crate) op: String,
    pub(crate) domain: String,
    attributes: Vec<Message<'a>>,
    rest: Message<'a>,
}

impl<'a> Node<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Node<'a>, String> {
        let mut rest = Message::parse(bytes)?;
        let attributes = rest.take_bytes(NODE_ATTRIBUTE)?.into_iter().map(Message::parse).collect::<Result<_, _>>()?;
        let node = Node {
            inputs: rest.strings(NODE_INPUT),
            outputs: rest.strings(NODE_OUTPUT),
            name: rest.string(NODE_NAME),
            op: rest.string(NODE_OP_TYPE),
            domain: rest.string(NODE_DOMAIN),
            attributes,
            rest: Message::default(),
        };
        for field in [NODE_INPUT, NODE_OUTPUT, NODE_NAME, NODE_OP_TYPE, NODE_DOMAIN] {
            rest.remove(field);
        }
        Ok(Node { rest, ..node })
    }

    fn to_message(&self) -> Message<'_> {
        let mut node = Message::default();
        for input in &self.inputs {
            node.push_string(NODE_INPUT, input);
        }
        for output in &self.outputs {
            node.push_string(NODE_OUTPUT, output);
        }
        if !self.name.is_empty() {
            node.push_string(NODE_NAME, &self.name);
        }
        node.push_string(NODE_OP_TYPE, &self.op);
        for attribute in &self.attributes {
            node.push_message(NODE_ATTRIBUTE, attribute);
        }
        if !self.domain.is_empty() {
            node.push_string(NODE_DOMAIN, &self.domain);
        }
        node.fields.extend(self.rest.fields.iter().cloned());
        node
    }

    /// A new node of the default (ONNX) domain.
    pub(crate) fn new(op: &str, name: String, inputs: Vec<String>, outputs: Vec<String>) -> Node<'a> {
        Node {
            inputs,
            outputs,
            name,
            op: op.to_owned(),
            domain: String::new(),
            attributes: Vec::new(),
            rest: Message::default(),
        }
    }

    /// Whether this is the ONNX operator `op` (not another domain's).
    pub(crate) fn is(&self, op: &str) -> bool {
        self.op == op && self.onnx()
    }

    /// The operator, if it is one of ONNX's own; "" for another domain's.
    pub(crate) fn onnx_op(&self) -> &str {
        if self.onnx() { &self.op } else { "" }
    }

    fn onnx(&self) -> bool {
        self.domain.is_empty() || self.domain == "ai.onnx"
    }

    fn attribute(&self, name: &str) -> Option<&Message<'a>> {
        self.attributes.iter().find(|a| a.string(ATTR_NAME) == name)
    }

    pub(crate) fn int(&self, name: &str) -> Option<i64> {
        self.attribute(name)?.varint(ATTR_I).map(|v| v as i64)
    }

    pub(crate) fn ints(&self, name: &str) -> Option<Vec<i64>> {
        Some(self.attribute(name)?.varints(ATTR_INTS).ok()?.into_iter().map(|v| v as i64).collect())
    }

    pub(crate) fn float(&self, name: &str) -> Option<f32> {
        self.attribute(name)?.fixed32(ATTR_F).map(f32::from_bits)
    }

    pub(crate) fn text(&self, name: &str) -> Option<String> {
        self.attribute(name).map(|a| a.string(ATTR_S))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.attribute(name).is_some()
    }

    /// The float tensor in attribute `name` (a `ConstantOfShape`'s fill).
    pub(crate) fn tensor_attribute(&self, name: &str) -> Option<Tensor> {
        float_tensor(&self.tensor_message(name)?)
    }

    fn tensor_message(&self, name: &str) -> Option<Message<'_>> {
        Message::parse(self.attribute(name)?.bytes(ATTR_T).next()?).ok()
    }

    pub(crate) fn set_int(&mut self, name: &str, value: i64) {
        self.attributes.retain(|a| a.string(ATTR_NAME) != name);
        let mut attribute = Message::default();
        attribute.push_string(ATTR_NAME, name);
        attribute.push(ATTR_TYPE, Value::Varint(ATTR_TYPE_INT));
        attribute.push(ATTR_I, Value::Varint(value as u64));
        self.attributes.push(attribute);
    }

    pub(crate) fn set_float(&mut self, name: &str, value: f32) {
        self.attributes.retain(|a| a.string(ATTR_NAME) != name);
        let mut attribute = Message::default();
        attribute.push_string(ATTR_NAME, name);
        attribute.push(ATTR_TYPE, Value::Varint(ATTR_TYPE_FLOAT));
        attribute.push(ATTR_F, Value::Fixed32(value.to_bits()));
        self.attributes.push(attribute);
    }

    pub(crate) fn set_ints(&mut self, name: &str, values: &[i64]) {
        self.attributes.retain(|a| a.string(ATTR_NAME) != name);
        let mut attribute = Message::default();
        attribute.push_string(ATTR_NAME, name);
        attribute.push(ATTR_TYPE, Value::Varint(ATTR_TYPE_INTS));
        attribute.push_varints(ATTR_INTS, values.iter().map(|&v| v as u64));
        self.attributes.push(attribute);
    }
}

#[cfg(test)]
impl Model<'static> {
    /// A model of `nodes`, with `constants` as its initializers and
    /// `outputs` as its outputs.
    pub(crate) fn of(nodes: Vec<Node<'static>>, constants: &[(&str, Tensor)], outputs: &[&str]) -> Model<'static> {
        let mut graph =
            Graph { nodes, initializers: Vec::new(), by_name: HashMap::new(), rest: Message::default(), fresh: 0 };
        for (name, tensor) in constants {
            graph.add_named_initializer(name, tensor);
        }
        for output in outputs {
            let mut value_info = Message::default();
            value_info.push_string(1, output);
            graph.rest.push_message(GRAPH_OUTPUT, &value_info);
        }
        let mut rest = Message::default();
        rest.push(MODEL_IR_VERSION, Value::Varint(8));
        Model { rest, graph }
    }
}

#[cfg(test)]
impl Node<'_> {
    /// Gives the node an (empty) graph attribute, as `If` has.
    pub(crate) fn set_graph(&mut self, name: &str) {
        let mut attribute = Message::default();
        attribute.push_string(ATTR_NAME, name);
        attribute.push(ATTR_G, Value::Bytes(Cow::Owned(Vec::new())));
        self.attributes.push(attribute);
    }
}

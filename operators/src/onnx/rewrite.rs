//! frameflow's own graph rewrites, made before ONNX Runtime optimises a
//! model. Each computes the same function (to float rounding) in a form
//! ONNX Runtime runs faster on x86, where it works in blocked channel
//! layouts (NCHWc: blocks of 16 channels with AVX-512, 8 with AVX2) and
//! fuses a convolution with what follows it only in set shapes:
//!
//! - **Scale and shift into the convolution before.** A `Mul` or `Add` by
//!   a scalar that is all that reads a convolution's output becomes part
//!   of its weights and bias. ONNX Runtime does this only for constants of
//!   the output's rank; PP-OCRv4's learnable affine blocks, after every
//!   convolution, are of rank 1.
//! - **Hard-swish.** `x * Clip(x + 3, 0, 6) / 6` becomes
//!   `x * HardSigmoid(x)`, which ONNX Runtime fuses into the convolution
//!   before it as one activation, in NCHWc. Written out, it ran as four
//!   passes over memory with a layout change either side.
//! - **Scale and shift into the convolution after.** `Mul(x, s)` then
//!   `Add(., b)` with scalar `s` and `b`, read only by convolutions without
//!   padding, becomes part of their weights (`W·s`) and bias (`B + b·ΣW`).
//!   (With padding the border would differ: the padding is zeros after the
//!   shift, not before it.)
//! - **Scale and shift by convolution.** Those left (before a padded
//!   convolution, say) become a 1x1 depthwise convolution, which stays in
//!   NCHWc where the `Mul` and `Add` made ONNX Runtime leave it and come
//!   back, on a tensor that had to be reordered twice.
//! - **PReLU by convolution.** ONNX Runtime runs `PRelu` with a slope per
//!   channel as a general broadcast, outside NCHWc: it took more of
//!   MTCNN's P-Net than its convolutions. `PRelu(x)` is
//!   `(1 - s)·Relu(x) + s·x`, which is a ReLU, two 1x1 depthwise
//!   convolutions and an addition that ONNX Runtime fuses into the second.
//! - **Zero channels by convolution.** `Concat(x, zeros)` along channels
//!   (BlazeFace's residual paths, as the channel count grows) becomes a
//!   1x1 convolution by the identity, which stays in NCHWc.
//! - **Channel padding.** A depthwise convolution runs in NCHWc only when
//!   its channel count is a multiple of the block. Where it is not
//!   (BlazeFace's 24 channels on AVX-512), the channels of every tensor
//!   that shares its width (through ReLU, max-pooling, addition and
//!   depthwise convolution) are padded to the block with channels that
//!   stay zero: the convolutions that make them get zero filters and
//!   biases, and those that read them zero weights.
//!
//! The last four apply only on x86 (the block size says whether).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::graph::{Graph, Model, Node, Tensor};

/// What [`rewrite`] changed, counted per rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rewrites {
    pub folded_into_previous_conv: usize,
    pub hard_swish: usize,
    pub folded_into_next_conv: usize,
    pub affines_as_conv: usize,
    pub prelus_as_convs: usize,
    pub zero_concats: usize,
    pub padded_channel_groups: usize,
}

impl Rewrites {
    fn any(&self) -> bool {
        *self != Rewrites::default()
    }
}

/// The ONNX model `onnx` rewritten as the module doc says, for a CPU whose
/// NCHWc block is `nchwc_block` channels (`None`: not x86, or ONNX Runtime
/// does not use NCHWc there). `None` when nothing applied, when the model
/// keeps its weights in external files (rewriting it in memory would lose
/// their paths), or when it has subgraphs (`If`, `Loop`).
///
/// # Errors
/// Bytes that are not a protobuf message with a graph.
pub fn rewrite(onnx: &[u8], nchwc_block: Option<usize>) -> Result<Option<(Vec<u8>, Rewrites)>, String> {
    let mut model = Model::parse(onnx)?;
    // A subgraph's nodes read this graph's tensors by name, unseen by the
    // rewrites' bookkeeping: such models are left as they are.
    if model.graph.has_external_data() || model.graph.has_subgraphs() {
        return Ok(None);
    }
    let graph = &mut model.graph;
    let mut done = Rewrites {
        folded_into_previous_conv: fold_into_previous_conv(graph),
        hard_swish: hard_swish(graph),
        folded_into_next_conv: fold_into_next_conv(graph),
        ..Rewrites::default()
    };
    if let Some(block) = nchwc_block {
        done.affines_as_conv = affines_as_conv(graph, block);
        done.prelus_as_convs = prelus_as_convs(graph);
        done.zero_concats = zero_concats(graph);
        done.padded_channel_groups = pad_channels(graph, block);
    }
    Ok(done.any().then(|| (model.to_bytes(), done)))
}

/// The channel block ONNX Runtime's NCHWc layouts use on this CPU, if any.
pub fn nchwc_block() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(16);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(8);
        }
    }
    None
}

fn fold_into_previous_conv(graph: &mut Graph) -> usize {
    let mut folded = 0;
    while let Some(PreviousFold { conv, op, mut weights, bias, constant }) = find_previous_fold(graph) {
        let filters = weights.dims[0];
        let mut bias = bias.map_or_else(|| vec![0.0; filters], |b| b.values);
        if graph.nodes[op].is("Mul") {
            weights.values.iter_mut().for_each(|w| *w *= constant);
            bias.iter_mut().for_each(|b| *b *= constant);
        } else {
            bias.iter_mut().for_each(|b| *b += constant);
        }
        let output = graph.nodes[op].outputs[0].clone();
        let w = graph.add_initializer(&format!("{output}/weights"), &weights);
        let b = graph.add_initializer(&format!("{output}/bias"), &Tensor { dims: vec![filters], values: bias });
        let node = &mut graph.nodes[conv];
        node.inputs.truncate(1);
        node.inputs.extend([w, b]);
        node.outputs = vec![output];
        remove_nodes(graph, vec![op]);
        folded += 1;
    }
    folded
}

/// A scalar Mul or Add that is all that reads a convolution's output.
struct PreviousFold {
    conv: usize,
    op: usize,
    weights: Tensor,
    bias: Option<Tensor>,
    constant: f32,
}

fn find_previous_fold(graph: &Graph) -> Option<PreviousFold> {
    let uses = Uses::of(graph);
    graph.nodes.iter().enumerate().find_map(|(op, node)| {
        if !(node.is("Mul") || node.is("Add")) || node.outputs.len() != 1 {
            return None;
        }
        let (x, constant) = with_scalar(graph, node)?;
        let (conv, maker) = uses.producer(graph, x)?;
        if !maker.is("Conv") || maker.outputs.len() != 1 || !uses.read_once(x) {
            return None;
        }
        let (weights, bias) = conv_constants(graph, maker)?;
        Some(PreviousFold { conv, op, weights, bias, constant })
    })
}

/// Who makes and who reads each tensor, and which tensors leave the graph.
struct Uses {
    producers: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
    outputs: HashSet<String>,
}

impl Uses {
    fn of(graph: &Graph) -> Uses {
        Uses {
            producers: graph.producers(),
            consumers: graph.consumers(),
            outputs: graph.outputs().into_iter().collect(),
        }
    }

    fn producer<'g, 'a>(&self, graph: &'g Graph<'a>, tensor: &str) -> Option<(usize, &'g Node<'a>)> {
        self.producers.get(tensor).map(|&i| (i, &graph.nodes[i]))
    }

    fn readers(&self, tensor: &str) -> &[usize] {
        self.consumers.get(tensor).map_or(&[], Vec::as_slice)
    }

    /// Whether `tensor` is read by exactly one node and is not an output.
    fn read_once(&self, tensor: &str) -> bool {
        self.readers(tensor).len() == 1 && !self.outputs.contains(tensor)
    }
}

/// For a scalar `Add` whose operand `x` only a scalar `Mul` makes and
/// only it reads: that Mul, its operand and its scalar.
fn scaled_before<'g>(graph: &'g Graph, uses: &Uses, add: &Node, x: &str) -> Option<(usize, &'g str, f32)> {
    let (m, mul) = uses.producer(graph, x)?;
    let (y, scale) = with_scalar(graph, mul)?;
    (add.is("Add") && mul.is("Mul") && uses.read_once(x)).then_some((m, y, scale))
}

/// Removes the nodes at `indices`.
fn remove_nodes(graph: &mut Graph, mut indices: Vec<usize>) {
    indices.sort_unstable();
    for i in indices.into_iter().rev() {
        graph.nodes.remove(i);
    }
}

/// `node`'s non-constant input and its scalar constant, if it has one of each.
fn with_scalar<'n>(graph: &Graph, node: &'n Node) -> Option<(&'n str, f32)> {
    let [a, b] = node.inputs.as_slice() else { return None };
    match (graph.scalar(a), graph.scalar(b)) {
        (None, Some(k)) if !graph.is_constant(a) => Some((a, k)),
        (Some(k), None) if !graph.is_constant(b) => Some((b, k)),
        _ => None,
    }
}

fn hard_swish(graph: &mut Graph) -> usize {
    let mut fused = 0;
    while let Some([add, clip, mul, div]) = find_hard_swish(graph) {
        let x = graph.nodes[mul].inputs.iter().find(|i| **i != graph.nodes[clip].outputs[0]).cloned();
        let Some(x) = x else { break };
        let hint = graph.nodes[clip].outputs[0].clone();
        let name = graph.fresh_name(&hint);
        let mut sigmoid = Node::new("HardSigmoid", name, vec![x], graph.nodes[clip].outputs.clone());
        sigmoid.set_float("alpha", 1.0 / 6.0);
        sigmoid.set_float("beta", 0.5);
        graph.nodes[add] = sigmoid;
        graph.nodes[mul].outputs = graph.nodes[div].outputs.clone();
        remove_nodes(graph, vec![clip, div]);
        fused += 1;
    }
    fused
}

/// The nodes of one `x * Clip(x + 3, 0, 6) / 6`: Add, Clip, Mul, Div.
fn find_hard_swish(graph: &Graph) -> Option<[usize; 4]> {
    let uses = Uses::of(graph);
    graph.nodes.iter().enumerate().find_map(|(d, div)| {
        let [product, six] = div.inputs.as_slice() else { return None };
        if !div.is("Div") || graph.scalar(six) != Some(6.0) {
            return None;
        }
        let (m, mul) = uses.producer(graph, product)?;
        if !mul.is("Mul") || mul.inputs.len() != 2 || !uses.read_once(product) {
            return None;
        }
        [(0, 1), (1, 0)].into_iter().find_map(|(x, gate)| {
            let (c, clip) = uses.producer(graph, &mul.inputs[gate])?;
            let clipped =
                clip.is("Clip") && uses.read_once(&clip.outputs[0]) && clip_bounds(graph, clip) == Some((0.0, 6.0));
            let (a, add) = uses.producer(graph, clip.inputs.first()?)?;
            let shifted = add.is("Add") && uses.read_once(&add.outputs[0]);
            (clipped && shifted && with_scalar(graph, add) == Some((mul.inputs[x].as_str(), 3.0)))
                .then_some([a, c, m, d])
        })
    })
}

/// A Clip's bounds: inputs since opset 11, attributes before.
fn clip_bounds(graph: &Graph, clip: &Node) -> Option<(f32, f32)> {
    match clip.inputs.as_slice() {
        [_, min, max] if !min.is_empty() && !max.is_empty() => Some((graph.scalar(min)?, graph.scalar(max)?)),
        [_] => Some((clip.float("min")?, clip.float("max")?)),
        _ => None,
    }
}

fn fold_into_next_conv(graph: &mut Graph) -> usize {
    let mut folded = 0;
    while let Some(fold) = find_next_fold(graph) {
        for (c, weights, bias) in fold.convs {
            let per_filter = weights.values.len() / weights.dims[0];
            let bias = weights
                .values
                .chunks(per_filter)
                .enumerate()
                .map(|(o, filter)| bias.as_ref().map_or(0.0, |b| b.values[o]) + fold.shift * filter.iter().sum::<f32>())
                .collect();
            let scaled = weights.values.iter().map(|w| w * fold.scale).collect();
            let hint = graph.nodes[c].outputs.first().cloned().unwrap_or_default();
            let w = graph
                .add_initializer(&format!("{hint}/weights"), &Tensor { dims: weights.dims.clone(), values: scaled });
            let b =
                graph.add_initializer(&format!("{hint}/bias"), &Tensor { dims: vec![weights.dims[0]], values: bias });
            graph.nodes[c].inputs = vec![fold.input.clone(), w, b];
        }
        remove_nodes(graph, fold.nodes);
        folded += 1;
    }
    folded
}

/// A scale and shift that only unpadded convolutions read.
struct NextFold {
    /// The Mul and Add (or just one of them).
    nodes: Vec<usize>,
    input: String,
    scale: f32,
    shift: f32,
    /// The convolutions, with their weights and bias.
    convs: Vec<(usize, Tensor, Option<Tensor>)>,
}

fn find_next_fold(graph: &Graph) -> Option<NextFold> {
    let uses = Uses::of(graph);
    graph.nodes.iter().enumerate().find_map(|(i, node)| {
        if !(node.is("Mul") || node.is("Add")) {
            return None;
        }
        let (x, k) = with_scalar(graph, node)?;
        let out = node.outputs.first()?;
        let readers = uses.readers(out);
        if readers.is_empty() || uses.outputs.contains(out) {
            return None;
        }
        let convs = readers
            .iter()
            .map(|&c| {
                let conv = &graph.nodes[c];
                let reads_as_data =
                    conv.inputs.iter().position(|i| i == out) == Some(0) && !conv.inputs[1..].contains(out);
                let (weights, bias) = conv_constants(graph, conv)?;
                (conv.is("Conv") && reads_as_data && unpadded(conv)).then_some((c, weights, bias))
            })
            .collect::<Option<Vec<_>>>()?;
        let (scale, shift) = if node.is("Mul") { (k, 0.0) } else { (1.0, k) };
        let mut fold = NextFold { nodes: vec![i], input: x.to_owned(), scale, shift, convs };
        if let Some((m, y, s)) = scaled_before(graph, &uses, node, x) {
            fold.nodes.push(m);
            fold.input = y.to_owned();
            fold.scale = s;
        }
        Some(fold)
    })
}

fn unpadded(conv: &Node) -> bool {
    let no_pads = conv.ints("pads").is_none_or(|pads| pads.iter().all(|&p| p == 0));
    let auto = conv.text("auto_pad").unwrap_or_default();
    no_pads && matches!(auto.as_str(), "" | "NOTSET" | "VALID")
}

/// A convolution's constant weights and bias (if it has one).
fn conv_constants(graph: &Graph, conv: &Node) -> Option<(Tensor, Option<Tensor>)> {
    let weights = graph.floats(conv.inputs.get(1)?).filter(|w| w.dims.len() == 4 && w.dims.iter().all(|&d| d > 0))?;
    match conv.inputs.get(2).filter(|b| !b.is_empty()) {
        None => Some((weights, None)),
        Some(b) => {
            let bias = graph.floats(b).filter(|b| b.values.len() == weights.dims[0])?;
            Some((weights, Some(bias)))
        }
    }
}

fn affines_as_conv(graph: &mut Graph, block: usize) -> usize {
    let mut replaced = 0;
    while let Some(affine) = find_affine(graph, block) {
        let (first, last) = (affine.nodes[0], affine.nodes[affine.nodes.len() - 1]);
        let output = graph.nodes[last].outputs[0].clone();
        let c = affine.channels;
        let w = graph.add_initializer(
            &format!("{output}/scale"),
            &Tensor { dims: vec![c, 1, 1, 1], values: vec![affine.scale; c] },
        );
        let b =
            graph.add_initializer(&format!("{output}/shift"), &Tensor { dims: vec![c], values: vec![affine.shift; c] });
        let name = graph.fresh_name(&output);
        let mut conv = Node::new("Conv", name, vec![affine.input, w, b], vec![output]);
        conv.set_int("group", c as i64);
        conv.set_ints("kernel_shape", &[1, 1]);
        graph.nodes[first] = conv;
        remove_nodes(graph, affine.nodes[1..].to_vec());
        replaced += 1;
    }
    replaced
}

/// A scalar scale then shift (or one of them) on a tensor of a known
/// channel count that is a multiple of the block.
struct Affine {
    /// The Mul and Add, or the one of them, in graph order.
    nodes: Vec<usize>,
    input: String,
    channels: usize,
    scale: f32,
    shift: f32,
}

fn find_affine(graph: &Graph, block: usize) -> Option<Affine> {
    let uses = Uses::of(graph);
    let shifted_next = |tensor: &str| {
        uses.read_once(tensor) && {
            let reader = &graph.nodes[uses.readers(tensor)[0]];
            reader.is("Add") && with_scalar(graph, reader).is_some()
        }
    };
    graph.nodes.iter().enumerate().find_map(|(i, node)| {
        let (x, k) = with_scalar(graph, node)?;
        let out = node.outputs.first()?;
        let mut affine = match node.onnx_op() {
            "Mul" if !shifted_next(out) => {
                Affine { nodes: vec![i], input: x.to_owned(), channels: 0, scale: k, shift: 0.0 }
            }
            "Add" => Affine { nodes: vec![i], input: x.to_owned(), channels: 0, scale: 1.0, shift: k },
            _ => return None,
        };
        if let Some((m, y, s)) = scaled_before(graph, &uses, node, x) {
            affine.nodes.insert(0, m);
            affine.input = y.to_owned();
            affine.scale = s;
        }
        affine.channels = channels(graph, &uses, &affine.input)?;
        (affine.channels > 1 && affine.channels % block == 0).then_some(affine)
    })
}

fn prelus_as_convs(graph: &mut Graph) -> usize {
    let mut replaced = 0;
    while let Some((i, channels, slopes)) = find_prelu(graph) {
        let prelu = graph.nodes[i].clone();
        let (x, output) = (&prelu.inputs[0], &prelu.outputs[0]);
        let relu = graph.fresh_name(&format!("{output}/relu"));
        let scaled = graph.fresh_name(&format!("{output}/scaled"));
        let kept = graph.fresh_name(&format!("{output}/kept"));
        let slope = graph.add_initializer(
            &format!("{output}/slope"),
            &Tensor { dims: vec![channels, 1, 1, 1], values: slopes.clone() },
        );
        let rest = Tensor { dims: vec![channels, 1, 1, 1], values: slopes.iter().map(|s| 1.0 - s).collect() };
        let rest = graph.add_initializer(&format!("{output}/rest"), &rest);
        let depthwise = |name: &str, inputs: Vec<String>| {
            let mut conv = Node::new("Conv", name.to_owned(), inputs, vec![name.to_owned()]);
            conv.set_int("group", channels as i64);
            conv.set_ints("kernel_shape", &[1, 1]);
            conv
        };
        let nodes = [
            Node::new("Relu", relu.clone(), vec![x.clone()], vec![relu.clone()]),
            depthwise(&scaled, vec![x.clone(), slope]),
            depthwise(&kept, vec![relu, rest]),
            Node::new("Add", graph.fresh_name(output), vec![kept, scaled], vec![output.clone()]),
        ];
        graph.nodes.splice(i..=i, nodes);
        replaced += 1;
    }
    replaced
}

/// A PRelu on a tensor of known channel count with constant slopes: its
/// index, the channels and a slope per channel.
fn find_prelu(graph: &Graph) -> Option<(usize, usize, Vec<f32>)> {
    let uses = Uses::of(graph);
    graph.nodes.iter().enumerate().find_map(|(i, node)| {
        let [x, slope] = node.inputs.as_slice() else { return None };
        if !node.is("PRelu") || node.outputs.len() != 1 {
            return None;
        }
        let channels = channels(graph, &uses, x)?;
        let slopes = graph.floats(slope)?;
        // broadcast against [N, C, H, W]: one slope, or one per channel
        match slopes.dims.as_slice() {
            [] | [1] | [1, 1] | [1, 1, 1] | [1, 1, 1, 1] => Some((i, channels, vec![slopes.values[0]; channels])),
            [c, 1, 1] | [1, c, 1, 1] if *c == channels => Some((i, channels, slopes.values)),
            _ => None,
        }
    })
}

fn zero_concats(graph: &mut Graph) -> usize {
    let mut replaced = 0;
    for i in 0..graph.nodes.len() {
        let Some((x, channels, zeros)) = zero_concat(graph, &graph.nodes[i]) else { continue };
        let mut identity =
            Tensor { dims: vec![channels + zeros, channels, 1, 1], values: vec![0.0; (channels + zeros) * channels] };
        for c in 0..channels {
            identity.values[c * channels + c] = 1.0;
        }
        let output = graph.nodes[i].outputs[0].clone();
        let w = graph.add_initializer(&format!("{output}/identity"), &identity);
        let name = graph.fresh_name(&output);
        let mut conv = Node::new("Conv", name, vec![x, w], vec![output]);
        conv.set_ints("kernel_shape", &[1, 1]);
        graph.nodes[i] = conv;
        replaced += 1;
    }
    replaced
}

/// For `Concat(x, zeros)` along channels: x, its channels, and how many
/// zero channels follow.
fn zero_concat(graph: &Graph, node: &Node) -> Option<(String, usize, usize)> {
    let [x, z] = node.inputs.as_slice() else { return None };
    if !node.is("Concat") || node.int("axis") != Some(1) {
        return None;
    }
    let uses = Uses::of(graph);
    let (_, fill) = uses.producer(graph, z)?;
    let zero_fill =
        !fill.has("value") || fill.tensor_attribute("value").is_some_and(|t| t.values.iter().all(|&v| v == 0.0));
    let shape = graph.int64s(fill.inputs.first()?)?;
    if !fill.is("ConstantOfShape") || !zero_fill || shape.len() != 4 {
        return None;
    }
    Some((x.clone(), channels(graph, &uses, x)?, usize::try_from(shape[1]).ok()?))
}

/// The channel count of `tensor`, from the 2-D convolutions that (through
/// channel-wise operators) made it.
fn channels(graph: &Graph, uses: &Uses, tensor: &str) -> Option<usize> {
    channels_from(graph, uses, tensor, &mut HashMap::new(), 0)
}

/// [`channels`], remembering each tensor's: residual blocks reach the same
/// tensors by many paths.
fn channels_from(
    graph: &Graph,
    uses: &Uses,
    tensor: &str,
    known: &mut HashMap<String, Option<usize>>,
    depth: usize,
) -> Option<usize> {
    if let Some(&channels) = known.get(tensor) {
        return channels;
    }
    let (_, node) = uses.producer(graph, tensor)?;
    let channels = match node.onnx_op() {
        "Conv" => match graph.constant_dims(node.inputs.get(1)?)?.as_slice() {
            [filters, _, _, _] => Some(*filters),
            _ => None,
        },
        "Relu" | "PRelu" | "MaxPool" | "AveragePool" | "HardSigmoid" | "Clip" if depth < 256 => {
            channels_from(graph, uses, node.inputs.first()?, known, depth + 1)
        }
        // every operand but a scalar constant must say the same
        "Add" | "Mul" if depth < 256 => {
            let mut counts = node.inputs.iter().filter(|i| graph.scalar(i).is_none());
            let first = channels_from(graph, uses, counts.next()?, known, depth + 1);
            let rest: Vec<&String> = counts.collect();
            let agree = rest.into_iter().all(|i| channels_from(graph, uses, i, known, depth + 1) == first);
            first.filter(|_| agree)
        }
        _ => None,
    };
    known.insert(tensor.to_owned(), channels);
    channels
}

fn pad_channels(graph: &mut Graph, block: usize) -> usize {
    let mut padded = 0;
    let mut tried = HashSet::new();
    while let Some(plan) = next_padding(graph, block, &mut tried) {
        let width = plan.channels.next_multiple_of(block);
        for (c, conv) in plan.convs {
            let mut dims = conv.weights.dims.clone();
            if conv.filters {
                dims[0] = width;
            }
            if conv.inputs {
                dims[1] = width;
            }
            let hint = graph.nodes[c].outputs.first().cloned().unwrap_or_default();
            let w = graph.add_initializer(&format!("{hint}/weights"), &zero_padded(&conv.weights, &dims));
            graph.nodes[c].inputs[1] = w;
            if let Some(bias) = conv.bias {
                let b = graph.add_initializer(&format!("{hint}/bias"), &zero_padded(&bias, &[dims[0]]));
                graph.nodes[c].inputs[2] = b;
            }
            if conv.depthwise {
                graph.nodes[c].set_int("group", width as i64);
            }
        }
        padded += 1;
    }
    padded
}

/// The convolutions to change so that one group of tensors of the same
/// channel count is padded.
struct Padding {
    channels: usize,
    convs: BTreeMap<usize, PaddedConv>,
}

/// One convolution of a [`Padding`], and what of it grows.
struct PaddedConv {
    weights: Tensor,
    bias: Option<Tensor>,
    /// It makes a tensor of the group: more (zero) filters.
    filters: bool,
    /// It reads one: more (zero) input channels.
    inputs: bool,
    /// Depthwise, inside the group: more filters and groups.
    depthwise: bool,
}

impl Padding {
    /// The entry for convolution `c`, made on first use; `None` if its
    /// weights are not constants.
    fn conv(&mut self, graph: &Graph, c: usize) -> Option<&mut PaddedConv> {
        match self.convs.entry(c) {
            Entry::Occupied(entry) => Some(entry.into_mut()),
            Entry::Vacant(entry) => {
                let (weights, bias) = conv_constants(graph, &graph.nodes[c])?;
                Some(entry.insert(PaddedConv { weights, bias, filters: false, inputs: false, depthwise: false }))
            }
        }
    }
}

/// The next group worth padding: one with a depthwise convolution whose
/// channel count is not a multiple of `block`, whose every tensor is made
/// and read only by operators that keep zero channels zero.
fn next_padding(graph: &Graph, block: usize, tried: &mut HashSet<usize>) -> Option<Padding> {
    let uses = Uses::of(graph);
    for (i, node) in graph.nodes.iter().enumerate() {
        let Some(channels) = depthwise_channels(graph, node) else { continue };
        if channels % block == 0 || !tried.insert(i) {
            continue;
        }
        if let Some(plan) = padding_from(graph, &uses, node.outputs.first()?, channels) {
            tried.extend(plan.convs.iter().filter(|(_, c)| c.depthwise).map(|(&i, _)| i));
            return Some(plan);
        }
    }
    None
}

/// A depthwise convolution's channel count.
fn depthwise_channels(graph: &Graph, conv: &Node) -> Option<usize> {
    let channels = filters(graph, conv)?;
    let depthwise = conv.is("Conv") && weight_inputs(graph, conv) == Some(1) && channels > 1;
    (depthwise && conv.int("group") == Some(channels as i64)).then_some(channels)
}

fn padding_from(graph: &Graph, uses: &Uses, start: &str, channels: usize) -> Option<Padding> {
    let mut plan = Padding { channels, convs: BTreeMap::new() };
    let mut seen = HashSet::new();
    let mut queue = vec![start.to_owned()];
    while let Some(tensor) = queue.pop() {
        if !seen.insert(tensor.clone()) {
            continue;
        }
        if uses.outputs.contains(&tensor) {
            return None;
        }
        let (p, maker) = uses.producer(graph, &tensor)?;
        match maker.onnx_op() {
            "Conv" if depthwise_channels(graph, maker) == Some(channels) => {
                let conv = plan.conv(graph, p)?;
                (conv.depthwise, conv.filters) = (true, true);
                queue.push(maker.inputs[0].clone());
            }
            "Conv" if maker.int("group").unwrap_or(1) == 1 && filters(graph, maker) == Some(channels) => {
                plan.conv(graph, p)?.filters = true;
            }
            "Relu" | "MaxPool" if one_output(maker) => queue.push(maker.inputs.first()?.clone()),
            "Add" if maker.inputs.len() == 2 => queue.extend(maker.inputs.iter().cloned()),
            _ => return None,
        }
        for &r in uses.readers(&tensor) {
            let reader = &graph.nodes[r];
            let output = reader.outputs.first()?.clone();
            match reader.onnx_op() {
                "Conv" if reader.inputs[0] != tensor || reader.inputs[1..].contains(&tensor) => return None,
                "Conv" if depthwise_channels(graph, reader) == Some(channels) => queue.push(output),
                "Conv" if reader.int("group").unwrap_or(1) == 1 && weight_inputs(graph, reader) == Some(channels) => {
                    plan.conv(graph, r)?.inputs = true;
                }
                "Relu" | "MaxPool" if one_output(reader) => queue.push(output),
                "Add" if reader.inputs.len() == 2 => {
                    queue.extend(reader.inputs.iter().cloned());
                    queue.push(output);
                }
                _ => return None,
            }
        }
    }
    Some(plan)
}

/// A 2-D convolution's filter count, from its weights' shape.
fn filters(graph: &Graph, conv: &Node) -> Option<usize> {
    graph.constant_dims(conv.inputs.get(1)?).filter(|d| d.len() == 4).map(|d| d[0])
}

/// A 2-D convolution's input channels per group, from its weights' shape.
fn weight_inputs(graph: &Graph, conv: &Node) -> Option<usize> {
    graph.constant_dims(conv.inputs.get(1)?).filter(|d| d.len() == 4).map(|d| d[1])
}

/// Whether the node gives one output (MaxPool may give its indices too,
/// which padding would change).
fn one_output(node: &Node) -> bool {
    node.outputs.iter().filter(|o| !o.is_empty()).count() == 1
}

/// `tensor` in a larger shape, its values in the leading corner, zeros
/// elsewhere.
fn zero_padded(tensor: &Tensor, dims: &[usize]) -> Tensor {
    let mut out = Tensor { dims: dims.to_vec(), values: vec![0.0; dims.iter().product()] };
    let inner: usize = tensor.dims.iter().skip(2).product();
    let (rows, cols) = (tensor.dims[0], tensor.dims.get(1).copied().unwrap_or(1));
    let out_cols = dims.get(1).copied().unwrap_or(1);
    for o in 0..rows {
        for i in 0..cols {
            let from = (o * cols + i) * inner;
            let to = (o * out_cols + i) * inner;
            out.values[to..to + inner].copy_from_slice(&tensor.values[from..from + inner]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tensor(dims: &[usize], value: impl Fn(usize) -> f32) -> Tensor {
        Tensor { dims: dims.to_vec(), values: (0..dims.iter().product()).map(value).collect() }
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Node<'static> {
        let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
        Node::new(op, outputs[0].to_owned(), names(inputs), names(outputs))
    }

    fn conv(inputs: &[&str], output: &str, group: i64, kernel: i64) -> Node<'static> {
        let mut conv = node("Conv", inputs, &[output]);
        conv.set_int("group", group);
        conv.set_ints("kernel_shape", &[kernel, kernel]);
        conv.set_ints("pads", &[kernel / 2; 4]);
        conv
    }

    /// What the rewrites for AVX-512 did to `model`, and its ops after.
    fn rewritten(model: &Model<'_>) -> Option<(Rewrites, Vec<String>, Graph<'static>)> {
        let (bytes, done) = rewrite(&model.to_bytes(), Some(16)).unwrap()?;
        // a test's few bytes, kept for the graph that borrows them
        let graph = Model::parse(Box::leak(bytes.into_boxed_slice())).unwrap().graph;
        Some((done, graph.nodes.iter().map(|n| n.op.clone()).collect(), graph))
    }

    #[test]
    fn a_scale_after_a_convolution_folds_into_it_unless_it_would_raise_the_rank() {
        let weights = ("w", tensor(&[4, 3, 3, 3], |i| i as f32));
        let model = |scale: &[usize]| {
            let nodes = vec![conv(&["x", "w"], "y", 1, 3), node("Mul", &["s", "y"], &["z"])];
            Model::of(nodes, &[weights.clone(), ("s", tensor(scale, |_| 0.5))], &["z"])
        };
        let (done, ops, graph) = rewritten(&model(&[1])).unwrap();
        assert_eq!((done.folded_into_previous_conv, ops), (1, vec!["Conv".to_owned()]));
        let folded = graph.floats(&graph.nodes[0].inputs[1]).unwrap();
        assert_eq!(folded, tensor(&[4, 3, 3, 3], |i| i as f32 * 0.5));
        assert_eq!(graph.nodes[0].outputs, ["z"]);
        // a [1,1,1,1,1] operand makes the product 5-D: not a scalar here
        assert!(rewritten(&model(&[1, 1, 1, 1, 1])).is_none());
    }

    #[test]
    fn hard_swish_needs_its_whole_pattern() {
        let constants =
            [("three", tensor(&[], |_| 3.0)), ("zero", tensor(&[], |_| 0.0)), ("six", tensor(&[], |_| 6.0))];
        let model = |clip: &[&str]| {
            let nodes = vec![
                node("Add", &["x", "three"], &["a"]),
                node("Clip", clip, &["c"]),
                node("Mul", &["x", "c"], &["m"]),
                node("Div", &["m", "six"], &["y"]),
            ];
            Model::of(nodes, &constants, &["y"])
        };
        let (done, ops, _) = rewritten(&model(&["a", "zero", "six"])).unwrap();
        assert_eq!((done.hard_swish, ops), (1, vec!["HardSigmoid".to_owned(), "Mul".to_owned()]));
        assert!(rewritten(&model(&["a", "zero"])).is_none(), "a Clip with no upper bound is not hard-swish");
    }

    #[test]
    fn a_prelu_becomes_convolutions_only_with_a_slope_per_channel() {
        let model = |slope: &[usize]| {
            let nodes = vec![conv(&["x", "w"], "y", 1, 3), node("PRelu", &["y", "s"], &["z"])];
            let constants = [("w", tensor(&[16, 3, 3, 3], |_| 0.1)), ("s", tensor(slope, |i| i as f32 / 16.0))];
            Model::of(nodes, &constants, &["z"])
        };
        let (done, ops, _) = rewritten(&model(&[16, 1, 1])).unwrap();
        assert_eq!(done.prelus_as_convs, 1);
        assert_eq!(ops, ["Conv", "Relu", "Conv", "Conv", "Add"]);
        // [16] broadcasts against the width, not the channels
        assert!(rewritten(&model(&[16])).is_none());
    }

    #[test]
    fn a_model_with_subgraphs_is_left_as_it_is() {
        let mut branch = node("If", &["flag"], &["b"]);
        branch.set_graph("then_branch");
        let nodes = vec![conv(&["x", "w"], "y", 1, 3), node("Mul", &["y", "s"], &["z"]), branch];
        let constants = [("w", tensor(&[4, 3, 3, 3], |_| 1.0)), ("s", tensor(&[1], |_| 0.5))];
        assert!(rewritten(&Model::of(nodes, &constants, &["z", "b"])).is_none());
    }

    /// x -> Conv (24 filters) -> a -> depthwise Conv -> b -> [between] -> Conv (8 filters)
    fn depthwise_stage(between: Vec<Node<'static>>, read: &str, outputs: &[&str]) -> Model<'static> {
        let mut nodes = vec![conv(&["x", "w1"], "a", 1, 1), conv(&["a", "dw"], "b", 24, 3)];
        nodes.extend(between);
        nodes.push(conv(&[read, "w2"], "c", 1, 1));
        let constants = [
            ("w1", tensor(&[24, 3, 1, 1], |_| 0.1)),
            ("dw", tensor(&[24, 1, 3, 3], |_| 0.1)),
            ("w2", tensor(&[8, 24, 1, 1], |_| 0.1)),
            ("w3", tensor(&[1, 3, 1, 1], |_| 0.1)),
        ];
        Model::of(nodes, &constants, outputs)
    }

    #[test]
    fn channels_are_padded_only_where_nothing_else_changes() {
        let (done, _, graph) = rewritten(&depthwise_stage(vec![], "b", &["c"])).unwrap();
        assert_eq!(done.padded_channel_groups, 1);
        let shape = |i: usize| graph.floats(&graph.nodes[i].inputs[1]).unwrap().dims;
        assert_eq!([shape(0), shape(1), shape(2)], [vec![32, 3, 1, 1], vec![32, 1, 3, 3], vec![8, 32, 1, 1]]);
        assert_eq!(graph.nodes[1].int("group"), Some(32));
        // MaxPool's indices would change with the channel count
        let pool = node("MaxPool", &["b"], &["p", "indices"]);
        assert!(rewritten(&depthwise_stage(vec![pool], "p", &["c", "indices"])).is_none());
        // a one-channel tensor broadcast into the group is not the group's
        let one = vec![conv(&["x", "w3"], "m", 1, 1), node("Add", &["b", "m"], &["d"])];
        assert!(rewritten(&depthwise_stage(one, "d", &["c"])).is_none());
        // nor is a graph output
        assert!(rewritten(&depthwise_stage(vec![], "b", &["c", "b"])).is_none());
    }
}

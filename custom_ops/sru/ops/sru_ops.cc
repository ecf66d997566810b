// Op definitions of the fused SRU recurrence: REGISTER_OP and shape functions
// only. Kernels: ../kernels/sru_kernels.cc (CPU), ../kernels/sru_kernels_gpu.cc
// (CUDA). Python wrapper and gradient: keras_ndsru/ops/sru_fused.py.
//
// Shapes (n_dir = 2 for direction "bidirectional", else 1; d = units):
//   u          [B, L, n_dir * 3 * d]   per direction: W x | W_f x | W_r x
//   x_highway  [B, L, n_dir * d]
//   weight_c   [n_dir * 2 * d]         per direction: v_f | v_r
//   bias       [n_dir * 2 * d]         per direction: b_f | b_r
//   c0         [B, n_dir * d]
//   lengths    [B] int32, right padding: steps t >= lengths[b] are invalid
//   h, c_seq   [B, L, n_dir * d]
//   h_last, c_last [B, n_dir * d]
// T is the storage type of u, x_highway, h and h_last; S is the state type
// (weight_c, bias, c0, c_seq, c_last), float32 unless T is double.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace keras_ndsru {
namespace {

using ::tensorflow::Status;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

Status NumDirections(InferenceContext* c, int64_t* n_dir) {
  std::string direction;
  TF_RETURN_IF_ERROR(c->GetAttr("direction", &direction));
  *n_dir = direction == "bidirectional" ? 2 : 1;
  return Status();
}

// Checks the shared inputs and returns batch, steps and n_dir * d.
Status CommonInputShapes(InferenceContext* c, DimensionHandle* batch,
                         DimensionHandle* steps, DimensionHandle* width) {
  int64_t n_dir = 1;
  TF_RETURN_IF_ERROR(NumDirections(c, &n_dir));
  ShapeHandle u, x, weight_c, bias, c0, lengths;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &u));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &weight_c));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 1, &bias));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 2, &c0));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 1, &lengths));

  DimensionHandle units;
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(u, 2), 3 * n_dir,
                               /*evenly_divisible=*/true, &units));
  DimensionHandle w, w2;
  TF_RETURN_IF_ERROR(c->Multiply(units, n_dir, &w));
  TF_RETURN_IF_ERROR(c->Multiply(units, 2 * n_dir, &w2));

  DimensionHandle b = c->Dim(u, 0), t = c->Dim(u, 1), unused;
  TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(x, 0), &b));
  TF_RETURN_IF_ERROR(c->Merge(t, c->Dim(x, 1), &t));
  TF_RETURN_IF_ERROR(c->Merge(w, c->Dim(x, 2), &w));
  TF_RETURN_IF_ERROR(c->Merge(w2, c->Dim(weight_c, 0), &unused));
  TF_RETURN_IF_ERROR(c->Merge(w2, c->Dim(bias, 0), &unused));
  TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(c0, 0), &b));
  TF_RETURN_IF_ERROR(c->Merge(w, c->Dim(c0, 1), &w));
  TF_RETURN_IF_ERROR(c->Merge(b, c->Dim(lengths, 0), &b));
  *batch = b;
  *steps = t;
  *width = w;
  return Status();
}

Status ForwardShape(InferenceContext* c) {
  DimensionHandle batch, steps, width;
  TF_RETURN_IF_ERROR(CommonInputShapes(c, &batch, &steps, &width));
  ShapeHandle seq = c->MakeShape({batch, steps, width});
  ShapeHandle state = c->MakeShape({batch, width});
  c->set_output(0, seq);    // h
  c->set_output(1, seq);    // c_seq
  c->set_output(2, state);  // h_last
  c->set_output(3, state);  // c_last
  return Status();
}

Status BackwardShape(InferenceContext* c) {
  DimensionHandle batch, steps, width;
  TF_RETURN_IF_ERROR(CommonInputShapes(c, &batch, &steps, &width));
  ShapeHandle seq = c->MakeShape({batch, steps, width});
  ShapeHandle state = c->MakeShape({batch, width});
  ShapeHandle unused;
  TF_RETURN_IF_ERROR(c->Merge(c->input(6), seq, &unused));  // c_seq
  TF_RETURN_IF_ERROR(c->Merge(c->input(7), seq, &unused));  // grad_h
  TF_RETURN_IF_ERROR(c->Merge(c->input(8), state, &unused));  // grad_h_last
  TF_RETURN_IF_ERROR(c->Merge(c->input(9), state, &unused));  // grad_c_last
  for (int i = 0; i < 5; ++i) c->set_output(i, c->input(i));
  return Status();
}

}  // namespace

REGISTER_OP("KerasNdsru>SruForward")
    .Input("u: T")
    .Input("x_highway: T")
    .Input("weight_c: S")
    .Input("bias: S")
    .Input("c0: S")
    .Input("lengths: int32")
    .Output("h: T")
    .Output("c_seq: S")
    .Output("h_last: T")
    .Output("c_last: S")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("S: {float, double}")
    .Attr("alpha: float = 1.0")
    .Attr("direction: {'forward', 'backward', 'bidirectional'} = 'forward'")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Fused SRU recurrence (Lei et al. 2017, arXiv 1709.02755, eqs. (1)-(4)).

h: hidden outputs, 0 at padded steps.
c_seq: cell state after each step (carried through padded steps); saved for
  the gradient op.
h_last: h of the last valid step each direction processed, 0 if none.
c_last: final cell state.
)doc");

REGISTER_OP("KerasNdsru>SruBackward")
    .Input("u: T")
    .Input("x_highway: T")
    .Input("weight_c: S")
    .Input("bias: S")
    .Input("c0: S")
    .Input("lengths: int32")
    .Input("c_seq: S")
    .Input("grad_h: T")
    .Input("grad_h_last: T")
    .Input("grad_c_last: S")
    .Output("grad_u: T")
    .Output("grad_x_highway: T")
    .Output("grad_weight_c: S")
    .Output("grad_bias: S")
    .Output("grad_c0: S")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("S: {float, double}")
    .Attr("alpha: float = 1.0")
    .Attr("direction: {'forward', 'backward', 'bidirectional'} = 'forward'")
    .SetShapeFn(BackwardShape)
    .Doc(R"doc(
Gradient of KerasNdsru>SruForward. Recomputes the gates from u and c_seq; the
weight_c and bias gradients are summed over the batch in a fixed order.
)doc");

}  // namespace keras_ndsru

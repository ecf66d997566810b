"""The exact LP of a fully split domain: its value is attained at its
minimizer, which lies in the domain (the split pattern holds there), and an
empty domain is proved empty only with a checked certificate."""

import dataclasses
import itertools

import numpy as np
import torch
from graph_nets import relu_graph
from verify_brute import random_net

from keras_ndsru.verify.bounds import crown
from keras_ndsru.verify.bounds import optimize as opt
from keras_ndsru.verify.bounds.spec import OutputSpec
from keras_ndsru.verify.properties.spec import Disjunct, Property, Region
from keras_ndsru.verify.search import bab, leaf_lp


def _problem(seed):
    rng = np.random.default_rng(seed)
    weights, biases = random_net(rng, [2, 4, 3, 2], scale=1.5)
    g = relu_graph(weights, biases)
    region = Region(-np.ones(2), np.ones(2))
    # rhs 100: the disjunct holds everywhere, so every feasible leaf returns
    # its minimizer (a candidate) and its value.
    prop = Property(region, [Disjunct(np.array([[1.0, -1.0]]), np.array([100.0]))])
    spec = OutputSpec.from_property(prop)
    box = crown.Box(torch.tensor(region.lower)[None], torch.tensor(region.upper)[None])
    bounds = crown.intermediate_bounds(g, box)
    problem = bab.Problem(g, box, bounds, spec, box, bounds)
    return g, spec, problem


def _patterns(problem):
    """Every full assignment of the root-unstable neurons, as domains."""
    root = bab._root(
        problem,
        torch.full((1, 1), -1e9, dtype=torch.float64),
        problem.compact(opt.initial_alphas(problem.graph, problem.bounds, 1)),
    )
    neurons = [
        int(problem.offsets[k] + j)
        for k, idx in enumerate(problem.unstable)
        for j in idx.tolist()
    ]
    for sides in itertools.product([0, 1], repeat=len(neurons)):
        domain = root
        for flat, side in zip(neurons, sides):
            domain = dataclasses.replace(domain, branch=torch.tensor([flat]))
            domain = bab._split(problem, domain, domain.alphas).take([side])
        yield domain


def _pattern_holds(graph, problem, splits, x):
    """Whether each split neuron's pre-activation has its side's sign at x."""
    values = {0: torch.tensor(x)[None]}
    for k in range(1, graph.output + 1):
        node = graph.nodes[k]
        values[k] = node.op.evaluate(*[values[i] for i in node.inputs])
    for r, s in splits.items():
        z = values[graph.nodes[r].inputs[0]].reshape(-1)
        s = s.reshape(-1)
        if torch.any((s > 0) & (z < -1e-7)) or torch.any((s < 0) & (z > 1e-7)):
            return False
    return True


def test_leaf_values_are_attained_and_empty_domains_are_empty():
    feasible = empty = 0
    for seed in range(4):
        graph, spec, problem = _problem(seed)
        samples = np.random.default_rng(seed).uniform(-1, 1, size=(20000, 2))
        for domain in _patterns(problem):
            assert leaf_lp.all_decided(
                graph, opt.domain_bounds(graph, problem.bounds, domain.splits)
            )
            lower, x = leaf_lp.decide_leaf(problem, domain.splits, [0])
            inside = [
                s
                for s in samples[::50]
                if _pattern_holds(graph, problem, domain.splits, s)
            ]
            if lower[0] == np.inf:
                empty += 1
                assert not inside  # a certified empty domain has no sample
                continue
            feasible += 1
            assert x is not None and _pattern_holds(graph, problem, domain.splits, x)
            margin = spec.mat @ graph(x) - spec.rhs
            # The sound bound is at most the value at the minimizer, and close.
            assert lower[0] <= margin[0] + 1e-9
            assert margin[0] - lower[0] < 1e-6
            for s in inside:  # and below every point of the domain
                assert lower[0] <= (spec.mat @ graph(s) - spec.rhs)[0] + 1e-9
    assert feasible >= 4 and empty >= 1

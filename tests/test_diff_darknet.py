"""Differential tests against the real Darknet, live: random cfgs through both, every layer compared.

For each fork, hypothesis draws small random cfgs (:mod:`darknet_py.testing.cfgs`: every
section type darknet_py builds for that fork, its options and their edge values, odd and
non-square sizes, strides, groups), derandomized. Each cfg gets seeded random weights
(written by darknet_py, read by Darknet's own load_weights) and a seeded input; the Darknet
build from ``../shared/darknet-src`` dumps every layer's ``l.output`` through the bridge's
harness and darknet_py must match each layer under the noise-floor rule of
:mod:`darknet_py.compare`. Also: every cfg that once exposed a darknet_py bug
(``REGRESSIONS``), the long run's findings. ``benchmarks/diff_long.py`` is the long run.

Skipped (with the reason) when no C compiler can build Darknet, unless
``DARKNET_PY_REQUIRE_DARKNET=1`` (``.ci/run``).
"""
from __future__ import annotations

import os
import re
import zlib

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from darknet_py.testing.cfgs import cfgs, kinds
from darknet_py.testing.differential import check_cfg, section_kinds

FORKS = ("pjreddie", "alexeyab")
#: examples per (fork, section type), and of free mixes per fork
PER_KIND = 3
MIXED = 25

_BUILDS: dict = {}


def _darknet(fork: str):
    """The fork's Darknet, built once per session (cached by the bridge across sessions)."""
    if fork not in _BUILDS:
        from darknet_py.darknet.build import build_darknet
        from darknet_py.errors import DarknetError
        try:
            _BUILDS[fork] = build_darknet(fork=fork)
        except DarknetError as exc:
            _BUILDS[fork] = exc
    found = _BUILDS[fork]
    if isinstance(found, Exception):
        if os.environ.get("DARKNET_PY_REQUIRE_DARKNET"):
            raise found
        pytest.skip(f"no {fork} Darknet build: {found}")
    return found


@pytest.fixture(params=FORKS)
def fork(request) -> str:
    return request.param


def _settings(examples: int):
    # no shrinking: a failure prints its cfg; shrinking would rerun Darknet many times
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _check(build, text: str, tmp_path, seed=None) -> None:
    seed = zlib.crc32(text.encode()) % 100000 if seed is None else seed
    outcome = check_cfg(build, text, seed=seed, workdir=tmp_path)
    if outcome.empty or outcome.nonfinite:
        return
    assert outcome.ok, outcome.explain()


@pytest.mark.parametrize("kind", sorted(set(kinds("pjreddie")) | set(kinds("alexeyab"))))
def test_each_section_type_matches_darknet(fork, kind, tmp_path):
    if kind not in kinds(fork):
        pytest.skip(f"[{kind}] is not generated for {fork} (not in that fork, or it crashes "
                    f"there: see darknet_py/testing/cfgs.py)")
    build = _darknet(fork)
    seen = []

    @_settings(PER_KIND)
    @given(cfgs(fork, max_sections=3, focus=kind))
    def one(text):
        names = section_kinds(text)
        seen.append(kind in names or (kind == "empty" and "silence" in names))
        _check(build, text, tmp_path)

    one()
    assert any(seen), f"no generated cfg had a [{kind}] section"


def test_random_mixes_match_darknet(fork, tmp_path):
    build = _darknet(fork)

    @_settings(MIXED)
    @given(cfgs(fork, max_sections=7))
    def one(text):
        _check(build, text, tmp_path)

    one()


#: cfgs on which darknet_py once differed from Darknet (found by the differential runs),
#: each with the fork, what was wrong and (when it matters) the seed; they must keep matching.
REGRESSIONS = [
    ("alexeyab", "[batchnorm] stores biases before its scales and adds them",
     "[net]\nwidth=5\nheight=3\nchannels=2\n[convolutional]\nfilters=3\nsize=3\npad=1\n"
     "activation=leaky\n[batchnorm]\n"),
    ("pjreddie", "[upsample] stride=-2 on an odd size reads its input flat",
     "[net]\nwidth=5\nheight=7\nchannels=2\n[convolutional]\nfilters=3\nsize=1\n"
     "activation=leaky\n[upsample]\nstride=-2\n"),
    ("alexeyab", "[upsample] stride=-3 on a non-multiple size reads its input flat",
     "[net]\nwidth=7\nheight=8\nchannels=1\n[upsample]\nstride=-3\n"),
    ("pjreddie", "1x1 [convolutional] with stride 2 reads its input flat (no im2col)",
     "[net]\nwidth=7\nheight=5\nchannels=3\n[convolutional]\nfilters=4\nsize=1\nstride=2\n"
     "groups=1\nbatch_normalize=1\nactivation=leaky\n[convolutional]\nfilters=2\nsize=1\n"
     "stride=3\ngroups=2\nactivation=linear\n"),
    ("alexeyab", "1x1 [convolutional] with stride_y 2, stride_x 1 reads its input flat",
     "[net]\nwidth=6\nheight=5\nchannels=2\n[convolutional]\nfilters=2\nsize=1\nstride_x=1\n"
     "stride_y=2\nactivation=mish\n"),
    ("pjreddie", "1x1 [convolutional] whose padding and stride keep the size: no padding either",
     "[net]\nwidth=1\nheight=2\nchannels=3\n[convolutional]\nfilters=6\nsize=1\ngroups=3\n"
     "activation=selu\npadding=1\nstride=3\n"),
    ("alexeyab", "AlexeyAB's tanh is 2/(1+expf(-2x))-1, inexact for tiny x",
     "[net]\nbatch=1\nwidth=8\nheight=9\nchannels=4\n[convolutional]\nfilters=1\nsize=1\n"
     "pad=1\nactivation=lhtan\n[activation]\nactivation=ramp\n[activation]\nactivation=tanh\n"
     "[silence]\n", 1000875),
    ("alexeyab", "dilated [convolutional] pads by pad*dilation (im2col_cpu_ext)",
     "[net]\nwidth=13\nheight=11\nchannels=1\n[convolutional]\nfilters=6\nsize=3\npad=1\n"
     "stride=1\ndilation=2\nactivation=linear\n[convolutional]\nfilters=2\nsize=3\npad=1\n"
     "stride=2\ndilation=2\nactivation=leaky\n"),
]


@pytest.mark.parametrize("case", REGRESSIONS, ids=[r[1] for r in REGRESSIONS])
def test_regressions_match_darknet(case, tmp_path):
    fork_, what, text, *seed = case  # the long run's weight/input seed where it matters
    _check(_darknet(fork_), text, tmp_path, seed[0] if seed else None)


def test_the_strategy_covers_every_section_type_of_the_readme():
    # README's "Section types" list, minus what Darknet itself cannot run (see cfgs.py)
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"),
                  encoding="utf-8").read()
    built = readme.split("### Section types", 1)[1].split("(aliases", 1)[0]
    listed = set(re.findall(r"`\[([A-Za-z_0-9]+)\]`", built)) - {"silence"}
    generated = set(kinds("pjreddie")) | set(kinds("alexeyab"))
    assert listed - generated == set()

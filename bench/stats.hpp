// SPDX-License-Identifier: BSD-3-Clause
// The statistics amp's benchmarks report: percentiles of one run's samples (Latency), and a figure's median
// and spread over rounds (Runs).
//
// Thread-safety: plain values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace amp::bench {

/// p50, p99 and max of a run's samples (nearest rank).
struct Latency {
  double p50 = 0, p99 = 0, max = 0;
  static Latency of(std::vector<double> samples) {
    Latency l;
    if (samples.empty()) return l;
    std::sort(samples.begin(), samples.end());
    auto at = [&](double p) {
      return samples[std::min(samples.size() - 1,
                              static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1) + 0.5))];
    };
    l.p50 = at(0.50);
    l.p99 = at(0.99);
    l.max = samples.back();
    return l;
  }
};

/// One figure over rounds: its median, and the spread as the min..max of the rounds.
struct Runs {
  std::vector<double> values;
  double median() const {
    auto v = values;
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  double lo() const { return values.empty() ? 0 : *std::min_element(values.begin(), values.end()); }
  double hi() const { return values.empty() ? 0 : *std::max_element(values.begin(), values.end()); }
};

}  // namespace amp::bench

#include "core/drift_prediction.hpp"

#include <algorithm>
#include <stdexcept>

#include <Eigen/Dense>

namespace livealign {

bool DriftPredictionOptions::Check(std::string* error) const {
  std::string why;
  if (window_frames < 2) why += "window_frames must be >= 2; ";
  if (!(residual_floor_px > 0)) why += "residual_floor_px must be > 0; ";
  if (error != nullptr) *error = why;
  return why.empty();
}

namespace {

double Median(std::vector<double> v) {
  const std::size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  return v[mid];
}

// A parabola needs frames to spare beyond its three parameters, or its
// extrapolation is mostly noise.
constexpr int kMinFramesForCurvature = 6;

struct PolynomialFit {
  bool ok = false;
  Shift at_next;
  Shift slope_at_next;  // per unit of t
  double sigma_px = std::nan("");
};

// Weighted least squares of d(t) by a polynomial of `degree` in (t - origin)
// / scale, evaluated at t_next, with the prediction error's standard
// deviation (per axis, x and y pooled) from the residuals.
PolynomialFit FitPolynomial(const std::vector<double>& t, const std::vector<Shift>& d,
                            const std::vector<double>& w, int degree, double origin, double scale,
                            double t_next) {
  const int m = static_cast<int>(t.size()), q = degree + 1;
  Eigen::MatrixXd x(m, q), y(m, 2);
  for (int u = 0; u < m; ++u) {
    const double tau = (t[u] - origin) / scale;
    for (int c = 0; c < q; ++c) x(u, c) = std::pow(tau, c);
    y(u, 0) = d[u].x;
    y(u, 1) = d[u].y;
  }
  const Eigen::VectorXd weights = Eigen::Map<const Eigen::VectorXd>(w.data(), m);
  const Eigen::MatrixXd normal = x.transpose() * weights.asDiagonal() * x;
  const Eigen::LDLT<Eigen::MatrixXd> solver(normal);
  PolynomialFit fit;
  if (solver.info() != Eigen::Success || !(solver.rcond() > 1e-12)) return fit;
  const Eigen::MatrixXd beta = solver.solve(x.transpose() * weights.asDiagonal() * y);
  const double tau_next = (t_next - origin) / scale;
  Eigen::VectorXd at(q), slope(q);
  for (int c = 0; c < q; ++c) {
    at(c) = std::pow(tau_next, c);
    slope(c) = c == 0 ? 0.0 : c * std::pow(tau_next, c - 1) / scale;
  }
  const Eigen::RowVector2d next = at.transpose() * beta, rate = slope.transpose() * beta;
  fit.ok = true;
  fit.at_next = Shift{next(0), next(1)};
  fit.slope_at_next = Shift{rate(0), rate(1)};
  if (m > q) {
    const Eigen::MatrixXd e = y - x * beta;
    const double variance = (weights.asDiagonal() * e.cwiseAbs2()).sum() / (2.0 * (m - q));
    const double leverage = at.dot(solver.solve(at));
    fit.sigma_px = std::sqrt(variance * (1.0 + leverage));
  }
  return fit;
}

}  // namespace

DriftPrediction PredictNextShift(const DriftTrace& trace, const DriftPredictionOptions& options) {
  std::string why;
  if (!options.Check(&why)) throw std::invalid_argument("PredictNextShift: " + why);
  const std::size_t n = trace.frame_indices.size();
  auto sized = [n](std::size_t size) { return size == 0 || size == n; };
  if (trace.shifts_px.size() != n || !sized(trace.timestamps_s.size()) ||
      !sized(trace.residual_px.size()) || !sized(trace.excluded.size()) ||
      !sized(trace.scan_offsets_px.size())) {
    throw std::invalid_argument("PredictNextShift: the trace's vectors differ in size");
  }
  DriftPrediction p;
  if (n == 0) return p;
  p.for_frame = trace.frame_indices.back() + 1;

  // The window: the last window_frames usable frames, oldest first.
  std::vector<std::size_t> used;
  for (std::size_t k = n; k-- > 0 && static_cast<int>(used.size()) < options.window_frames;) {
    if (!trace.excluded.empty() && trace.excluded[k]) continue;
    used.push_back(k);
  }
  std::reverse(used.begin(), used.end());
  p.frames_used = static_cast<int>(used.size());
  if (used.size() < 2) return p;

  // Abscissa: time when every frame in the window has one and they increase,
  // else the wire index (a frame per index step).
  bool timed = !trace.timestamps_s.empty();
  for (std::size_t u = 0; timed && u < used.size(); ++u) {
    const double t = trace.timestamps_s[used[u]];
    timed = std::isfinite(t) && (u == 0 || t > trace.timestamps_s[used[u - 1]]);
  }
  std::vector<double> t(used.size()), w(used.size());
  std::vector<Shift> d(used.size());
  std::vector<double> seconds_per_index;
  for (std::size_t u = 0; u < used.size(); ++u) {
    const std::size_t k = used[u];
    t[u] = timed ? trace.timestamps_s[k] : static_cast<double>(trace.frame_indices[k]);
    const double r = trace.residual_px.empty() ? 0.0 : trace.residual_px[k];
    const double sigma = std::isfinite(r) ? std::max(r, options.residual_floor_px) : options.residual_floor_px;
    w[u] = 1.0 / (sigma * sigma);
    d[u] = trace.shifts_px[k] + (trace.scan_offsets_px.empty() ? Shift{} : trace.scan_offsets_px[k]);
    if (u > 0) {
      const double steps = static_cast<double>(trace.frame_indices[k] - trace.frame_indices[used[u - 1]]);
      if (steps > 0) seconds_per_index.push_back((t[u] - t[u - 1]) / steps);
    }
  }
  if (seconds_per_index.empty()) return p;  // indices not increasing
  const double step = Median(seconds_per_index);
  const double t_next =
      t.back() + step * static_cast<double>(p.for_frame - trace.frame_indices[used.back()]);
  if (timed) p.for_time_s = t_next;

  // Weights normalised to a mean of 1, so the residual variance is that of a
  // typical frame and the prediction error that of one more such frame.
  double w_sum = 0;
  for (double wi : w) w_sum += wi;
  const int m = static_cast<int>(used.size());
  for (double& wi : w) wi *= m / w_sum;
  // A line, and a parabola when the window has enough frames; the one with
  // the smaller predicted error wins (a curving drift inflates the line's
  // residuals, noise the parabola's extrapolation).
  for (int degree = 1; degree <= 2; ++degree) {
    if (m < degree + 1 || (degree == 2 && m < kMinFramesForCurvature)) break;
    const PolynomialFit fit = FitPolynomial(t, d, w, degree, t.back(), step, t_next);
    if (!fit.ok) break;
    const bool better = !p.valid || (std::isfinite(fit.sigma_px) && fit.sigma_px < p.sigma_px);
    if (!better) continue;
    p.valid = true;
    p.shift_px = fit.at_next;
    p.sigma_px = fit.sigma_px;
    p.velocity_px_per_frame = fit.slope_at_next * step;
    p.fit_degree = degree;
  }
  return p;
}

}  // namespace livealign

#include "adapters/shift_matrix_image.hpp"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "adapters/png_writer.hpp"

namespace livealign {
namespace {

// ColorBrewer RdBu end points and a near-white centre.
constexpr Rgb kBlue{33, 102, 172};
constexpr Rgb kWhite{247, 247, 247};
constexpr Rgb kRed{178, 24, 43};
// Largest panel side; bounds the image at ~32k x 16k pixels (1.6 GB would be
// absurd for a diagnostic picture).
constexpr int kMaxPanelPx = 16384;

std::uint8_t Mix(std::uint8_t a, std::uint8_t b, double t) {
  return static_cast<std::uint8_t>(std::lround(a + (b - a) * t));
}

double AutoRange(const std::vector<double>& values, const std::vector<PairStatus>& status) {
  double range = 0;
  bool any_used = false;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    if (status[i] == PairStatus::kInlier || status[i] == PairStatus::kSnapped) {
      range = std::max(range, std::abs(values[i]));
      any_used = true;
    }
  }
  if (!any_used) {  // only rejected pairs: scale to them rather than to nothing
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (std::isfinite(values[i]) && status[i] != PairStatus::kMissing) {
        range = std::max(range, std::abs(values[i]));
      }
    }
  }
  return range > 0 ? range : 1.0;
}

void DrawPanel(const std::vector<double>& values, const ShiftMatrix& data, double range,
               int x_offset, int cell, RgbImage* image) {
  const int k = data.k;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t index = static_cast<std::size_t>(i) * k + j;
      const double v = values[index];
      const PairStatus status = data.status[index];
      const int x0 = x_offset + j * cell, y0 = i * cell;
      const bool missing = status == PairStatus::kMissing || !std::isfinite(v);
      image->FillRect(x0, y0, cell, cell,
                      status == PairStatus::kNoOverlap ? kShiftMatrixNoOverlap
                      : missing                ? kShiftMatrixMissing
                                               : DivergingColour(v / range));
      if (status == PairStatus::kRejected) {
        if (cell < 5) {
          image->FillRect(x0, y0, cell, cell, kShiftMatrixRejectedMark);
        } else {
          for (int t = 0; t < cell; ++t) {  // an X, two pixels thick when room
            image->set(x0 + t, y0 + t, kShiftMatrixRejectedMark);
            image->set(x0 + cell - 1 - t, y0 + t, kShiftMatrixRejectedMark);
            if (cell >= 10 && t + 1 < cell) {
              image->set(x0 + t + 1, y0 + t, kShiftMatrixRejectedMark);
              image->set(x0 + cell - 2 - t, y0 + t, kShiftMatrixRejectedMark);
            }
          }
        }
      } else if (status == PairStatus::kSnapped) {
        if (cell < 4) {
          image->FillRect(x0, y0, cell, cell, kShiftMatrixSnappedMark);
        } else {
          const int w = cell >= 10 ? 2 : 1;
          image->FillRect(x0, y0, cell, w, kShiftMatrixSnappedMark);
          image->FillRect(x0, y0 + cell - w, cell, w, kShiftMatrixSnappedMark);
          image->FillRect(x0, y0, w, cell, kShiftMatrixSnappedMark);
          image->FillRect(x0 + cell - w, y0, w, cell, kShiftMatrixSnappedMark);
        }
      }
    }
  }
}

}  // namespace

bool ShiftMatrixImageOptions::Check(std::string* error) const {
  if (cell_px < 0 || cell_px > 256) {
    if (error) *error = "cell_px must be in [0, 256], got " + std::to_string(cell_px);
    return false;
  }
  if (frames_per_cell < 1) {
    if (error) *error = "frames_per_cell must be at least 1, got " + std::to_string(frames_per_cell);
    return false;
  }
  if (gap_px < 0 || gap_px > 256) {
    if (error) *error = "gap_px must be in [0, 256], got " + std::to_string(gap_px);
    return false;
  }
  if (range_px && !(std::isfinite(*range_px) && *range_px > 0)) {
    if (error) *error = "range_px must be positive and finite";
    return false;
  }
  return true;
}

Rgb DivergingColour(double t) {
  if (std::isnan(t)) return kShiftMatrixMissing;
  t = std::max(-1.0, std::min(1.0, t));
  const Rgb end = t < 0 ? kBlue : kRed;
  const double a = std::abs(t);
  return {Mix(kWhite.r, end.r, a), Mix(kWhite.g, end.g, a), Mix(kWhite.b, end.b, a)};
}

ShiftMatrixImage RenderShiftMatrix(const ShiftMatrix& data,
                                   const ShiftMatrixImageOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("RenderShiftMatrix: " + error);
  if (data.k < 1 || data.k > 100000) throw std::invalid_argument("RenderShiftMatrix: k must be >= 1");
  const std::size_t n = static_cast<std::size_t>(data.k) * data.k;
  if (data.x.size() != n || data.y.size() != n || data.status.size() != n) {
    throw std::invalid_argument("RenderShiftMatrix: x, y and status must hold k*k entries");
  }
  for (PairStatus s : data.status) {
    if (static_cast<std::uint8_t>(s) > kMaxPairStatus) throw std::invalid_argument("RenderShiftMatrix: status must be 0..4");
  }
  ShiftMatrixImage out;
  out.cell_px = options.cell_px > 0 ? options.cell_px : std::max(1, std::min(32, 512 / data.k));
  out.range_x_px = options.range_px.value_or(AutoRange(data.x, data.status));
  out.range_y_px = options.range_px.value_or(AutoRange(data.y, data.status));
  if (static_cast<long long>(data.k) * out.cell_px > kMaxPanelPx) {
    throw std::invalid_argument("RenderShiftMatrix: k * cell_px exceeds " +
                                std::to_string(kMaxPanelPx) + " pixels");
  }
  const int panel = data.k * out.cell_px;
  out.image = RgbImage(2 * panel + options.gap_px, panel, kShiftMatrixGap);
  DrawPanel(data.x, data, out.range_x_px, 0, out.cell_px, &out.image);
  DrawPanel(data.y, data, out.range_y_px, panel + options.gap_px, out.cell_px, &out.image);
  return out;
}

namespace {

// Figure layout, pixels. The font size is fixed: labels stay legible however
// small the cells are, and the margins are sized for it.
constexpr double kFontPx = 12.0;
constexpr int kTitleH = 24;        // panel title band
constexpr int kRowLabelsW = 56;    // "frame i" (rotated) + row ticks
constexpr int kColumnLabelsH = 36; // column ticks + "frame j"
constexpr int kLegendH = 36;  // two lines
constexpr int kBarGap = 10, kBarW = 14, kBarLabelsW = 56;
constexpr int kPanelSeparation = 16;
constexpr int kMinPanelH = 64;     // room for the bar's three tick labels
constexpr Rgb kPaper{255, 255, 255};
constexpr Rgb kInk{0, 0, 0};

// One cairo image surface and context; released on destruction.
class Canvas {
 public:
  Canvas(int width, int height)
      : surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height)),
        cr_(cairo_create(surface_)) {
    if (cairo_surface_status(surface_) != CAIRO_STATUS_SUCCESS || cairo_status(cr_) != CAIRO_STATUS_SUCCESS) {
      Release();
      throw std::runtime_error("shift matrix figure: cairo could not create a " + std::to_string(width) +
                               " x " + std::to_string(height) + " surface");
    }
    cairo_select_font_face(cr_, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, kFontPx);
  }
  ~Canvas() { Release(); }
  Canvas(const Canvas&) = delete;
  Canvas& operator=(const Canvas&) = delete;

  cairo_t* cr() { return cr_; }

  // Copies `image` pixel for pixel with its top-left corner at (x0, y0).
  void Blit(const RgbImage& image, int x0, int y0) {
    cairo_surface_flush(surface_);
    unsigned char* data = cairo_image_surface_get_data(surface_);
    const int stride = cairo_image_surface_get_stride(surface_);
    for (int y = 0; y < image.height; ++y) {
      auto* row = reinterpret_cast<std::uint32_t*>(data + static_cast<std::ptrdiff_t>(y0 + y) * stride);
      for (int x = 0; x < image.width; ++x) {
        const Rgb c = image.at(x, y);
        row[x0 + x] = (std::uint32_t{c.r} << 16) | (std::uint32_t{c.g} << 8) | c.b;
      }
    }
    cairo_surface_mark_dirty(surface_);
  }

  // Text with its anchor at (x, y): align 0 left, 0.5 centre, 1 right of x;
  // y is the vertical centre. rotate: read bottom to top.
  void Text(const std::string& text, double x, double y, double align, bool rotate = false) {
    cairo_text_extents_t e;
    cairo_text_extents(cr_, text.c_str(), &e);
    cairo_save(cr_);
    cairo_translate(cr_, x, y);
    if (rotate) cairo_rotate(cr_, -M_PI / 2);
    cairo_move_to(cr_, -e.x_bearing - align * e.width, -e.y_bearing - e.height / 2);
    cairo_set_source_rgb(cr_, kInk.r / 255.0, kInk.g / 255.0, kInk.b / 255.0);
    cairo_show_text(cr_, text.c_str());
    cairo_restore(cr_);
  }

  void Outline(const FigureRect& r) {
    cairo_set_source_rgb(cr_, 0, 0, 0);
    cairo_set_line_width(cr_, 1.0);
    cairo_rectangle(cr_, r.x - 0.5, r.y - 0.5, r.width + 1.0, r.height + 1.0);
    cairo_stroke(cr_);
  }

  RgbImage ToRgb() {
    cairo_surface_flush(surface_);
    const int width = cairo_image_surface_get_width(surface_);
    const int height = cairo_image_surface_get_height(surface_);
    const unsigned char* data = cairo_image_surface_get_data(surface_);
    const int stride = cairo_image_surface_get_stride(surface_);
    RgbImage out(width, height);
    for (int y = 0; y < height; ++y) {
      const auto* row = reinterpret_cast<const std::uint32_t*>(data + static_cast<std::ptrdiff_t>(y) * stride);
      for (int x = 0; x < width; ++x) {
        out.set(x, y, Rgb{static_cast<std::uint8_t>(row[x] >> 16), static_cast<std::uint8_t>(row[x] >> 8),
                          static_cast<std::uint8_t>(row[x])});
      }
    }
    return out;
  }

 private:
  void Release() {
    if (cr_ != nullptr) cairo_destroy(cr_);
    if (surface_ != nullptr) cairo_surface_destroy(surface_);
    cr_ = nullptr;
    surface_ = nullptr;
  }
  cairo_surface_t* surface_ = nullptr;
  cairo_t* cr_ = nullptr;
};

// A value for a tick label: two significant digits at most, "0" for zero.
std::string TickValue(double v) {
  if (v == 0) return "0";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2g", v);
  return text;
}

// Frame-number tick step: 1, 2 or 5 times a power of ten, about six ticks.
int FrameTickStep(int k) {
  for (int scale = 1;; scale *= 10) {
    for (int m : {1, 2, 5}) {
      if (m * scale * 6 >= k) return m * scale;
    }
  }
}

struct PanelLayout {
  FigureRect panel, bar, bar_labels, title, label_j, label_i;
};

// One panel with its title, axes, ticks and colour bar: the cells are the
// panel_px wide strip of `cells` from source_x0; `left` is where the row
// labels start.
PanelLayout DrawPanelFigure(Canvas& canvas, const RgbImage& cells, int source_x0, int panel_px,
                            int cell, int k, int frames_per_cell, double range,
                            const std::string& title, int left) {
  const int panel_h = std::max(panel_px, kMinPanelH);
  PanelLayout l;
  l.panel = FigureRect{left + kRowLabelsW, kTitleH, panel_px, panel_px};
  l.title = FigureRect{l.panel.x, 0, panel_px + kBarGap + kBarW + kBarLabelsW, kTitleH};
  l.label_i = FigureRect{left, kTitleH, kRowLabelsW, panel_px};
  l.label_j = FigureRect{l.panel.x, kTitleH + panel_h, panel_px, kColumnLabelsH};
  l.bar = FigureRect{l.panel.x + panel_px + kBarGap, kTitleH, kBarW, panel_h};
  l.bar_labels = FigureRect{l.bar.x + kBarW + 2, kTitleH, kBarLabelsW - 2, panel_h};
  const FigureRect* panel = &l.panel;
  const FigureRect* bar = &l.bar;
  const FigureRect* label_j = &l.label_j;

  // Cells, copied from the panel rendering.
  RgbImage own(panel_px, panel_px);
  for (int y = 0; y < panel_px; ++y)
    for (int x = 0; x < panel_px; ++x) own.set(x, y, cells.at(source_x0 + x, y));
  canvas.Blit(own, panel->x, panel->y);
  canvas.Outline(*panel);

  // Colour bar: +range at the top row, -range at the bottom row.
  RgbImage bar_pixels(kBarW, panel_h);
  for (int y = 0; y < panel_h; ++y) {
    const double t = panel_h > 1 ? 1.0 - 2.0 * y / (panel_h - 1) : 0.0;
    for (int x = 0; x < kBarW; ++x) bar_pixels.set(x, y, DivergingColour(t));
  }
  canvas.Blit(bar_pixels, bar->x, bar->y);
  canvas.Outline(*bar);
  const double label_x = bar->x + kBarW + 4;
  canvas.Text(TickValue(range), label_x, bar->y + kFontPx / 2, 0);
  canvas.Text("0 px", label_x, bar->y + panel_h / 2.0, 0);
  canvas.Text(TickValue(-range), label_x, bar->y + panel_h - kFontPx / 2, 0);

  canvas.Text(title, panel->x + panel_px / 2.0, kTitleH / 2.0, 0.5);
  // Frame ticks at cell centres, rows on the left, columns below.
  const int step = FrameTickStep(k);
  for (int f = 0; f < k; f += step) {
    const double centre = (f + 0.5) * cell;
    const std::string frame = std::to_string(static_cast<long>(f) * frames_per_cell);
    canvas.Text(frame, panel->x - 4, panel->y + centre, 1);
    canvas.Text(frame, panel->x + centre, label_j->y + 9, 0.5);
  }
  canvas.Text("frame j", panel->x + panel_px / 2.0, label_j->y + 27, 0.5);
  canvas.Text("frame i", left + 9, panel->y + panel_px / 2.0, 0.5, /*rotate=*/true);
  return l;
}

}  // namespace

ShiftMatrixFigure RenderShiftMatrixFigure(const ShiftMatrix& data,
                                          const ShiftMatrixImageOptions& options) {
  ShiftMatrixFigure figure;
  figure.matrices = RenderShiftMatrix(data, options);
  const int cell = figure.matrices.cell_px;
  const int panel_px = data.k * cell;
  const int block_w = kRowLabelsW + panel_px + kBarGap + kBarW + kBarLabelsW;
  const int width = 2 * block_w + kPanelSeparation;
  const int height = kTitleH + std::max(panel_px, kMinPanelH) + kColumnLabelsH + kLegendH;
  Canvas canvas(width, height);
  cairo_set_source_rgb(canvas.cr(), kPaper.r / 255.0, kPaper.g / 255.0, kPaper.b / 255.0);
  cairo_paint(canvas.cr());
  const RgbImage& cells = figure.matrices.image;
  const int per_cell = options.frames_per_cell;
  const PanelLayout x = DrawPanelFigure(canvas, cells, 0, panel_px, cell, data.k, per_cell,
                                        figure.matrices.range_x_px, "shift x (px)", 0);
  const PanelLayout y = DrawPanelFigure(canvas, cells, panel_px + options.gap_px, panel_px, cell, data.k,
                                        per_cell, figure.matrices.range_y_px, "shift y (px)",
                                        block_w + kPanelSeparation);
  figure.panel_x = x.panel;
  figure.bar_x = x.bar;
  figure.bar_labels_x = x.bar_labels;
  figure.title_x = x.title;
  figure.label_j_x = x.label_j;
  figure.label_i_x = x.label_i;
  figure.panel_y = y.panel;
  figure.bar_y = y.bar;
  figure.bar_labels_y = y.bar_labels;
  figure.title_y = y.title;
  figure.label_j_y = y.label_j;
  figure.label_i_y = y.label_i;
  figure.legend = FigureRect{0, height - kLegendH, width, kLegendH};
  canvas.Text(per_cell > 1 ? "cell: mean of " + std::to_string(per_cell) + " x " +
                                 std::to_string(per_cell) + " pairs R_ij (about s_j - s_i), its dominant mark"
                           : std::string("cell (i, j): shift of frame j seen from frame i (R_ij, about s_j - s_i)"),
              8, figure.legend.y + kLegendH * 0.3, 0);
  canvas.Text("grey: not measured   X: rejected   green border: snapped by a lattice vector", 8,
              figure.legend.y + kLegendH * 0.75, 0);
  figure.image = canvas.ToRgb();
  return figure;
}

ShiftMatrixFigure WriteShiftMatrixPng(const std::string& path, const ShiftMatrix& data,
                                      const ShiftMatrixImageOptions& options,
                                      const AtomicWriteOptions& atomic) {
  ShiftMatrixFigure rendered = RenderShiftMatrixFigure(data, options);
  WriteRgbPng(path, rendered.image, atomic);
  return rendered;
}

}  // namespace livealign

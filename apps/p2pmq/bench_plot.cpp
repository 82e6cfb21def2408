// The SVG of `p2pmq bench --plot`: hand-written, self-contained (no scripts, fonts or links).
#include "bench_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace p2pmq::cli {

namespace {

double ms(uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `v` (axis tops).
double nice_ceiling(double v) {
  double decade = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * decade >= v) return m * decade;
  return 10 * decade;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;
    }
  }
  return out;
}

}  // namespace

// A self-contained SVG: the latency CDF (log-scaled milliseconds) and the delivered and acked
// rates over time.
std::string bench_svg(const std::string& title, const LatencyHistogram& latency,
                      const std::vector<double>& delivered, const std::vector<double>& acked,
                      double interval_s) {
  constexpr double kW = 960, kH = 420, kPlotW = 380, kPlotH = 280, kTop = 80;
  constexpr double kLeft1 = 80, kLeft2 = 560;
  std::ostringstream o;
  auto num = [](double v) { return fmt("%.2f", v); };
  o << R"(<?xml version="1.0" encoding="UTF-8"?>)"
    << "\n"
    << R"(<svg xmlns="http://www.w3.org/2000/svg" width=")" << kW << R"(" height=")" << kH
    << R"(" viewBox="0 0 )" << kW << " " << kH << R"(" font-family="sans-serif" font-size="12">)"
    << "\n"
    << R"(<rect width="100%" height="100%" fill="white"/>)"
    << "\n"
    << R"(<text x="20" y="28" font-size="15" font-weight="bold">)" << xml_escape(title)
    << "</text>\n";
  auto frame = [&](double left, const std::string& name, const std::string& xlabel,
                   const std::string& ylabel) {
    o << R"(<rect x=")" << left << R"(" y=")" << kTop << R"(" width=")" << kPlotW << R"(" height=")"
      << kPlotH << R"(" fill="none" stroke="#444"/>)"
      << "\n"
      << R"(<text x=")" << left << R"(" y=")" << kTop - 10 << R"(" font-weight="bold">)"
      << xml_escape(name) << "</text>\n"
      << R"(<text x=")" << left + kPlotW / 2 << R"(" y=")" << kTop + kPlotH + 36
      << R"(" text-anchor="middle">)" << xml_escape(xlabel) << "</text>\n"
      << R"x(<text transform="translate()x" << left - 52 << "," << kTop + kPlotH / 2
      << R"x() rotate(-90)" text-anchor="middle">)x" << xml_escape(ylabel) << "</text>\n";
  };

  // Latency CDF.
  frame(kLeft1, "Latency CDF (publish -> Listen)", "latency (ms, log scale)",
        "fraction of deliveries");
  auto cdf = latency.cdf();
  if (!cdf.empty()) {
    double lo = std::floor(std::log10(std::max(ms(latency.min()), 1e-3)));
    double hi = std::ceil(std::log10(std::max(ms(latency.max()), 1e-3)));
    if (hi <= lo) hi = lo + 1;
    auto x = [&](double v_ms) {
      double l = std::log10(std::max(v_ms, 1e-3));
      return kLeft1 + (std::clamp(l, lo, hi) - lo) / (hi - lo) * kPlotW;
    };
    auto y = [&](double f) { return kTop + kPlotH - f * kPlotH; };
    for (double d = lo; d <= hi; ++d) {
      double px = kLeft1 + (d - lo) / (hi - lo) * kPlotW;
      o << R"(<line x1=")" << num(px) << R"(" y1=")" << kTop << R"(" x2=")" << num(px)
        << R"(" y2=")" << kTop + kPlotH << R"(" stroke="#ddd"/>)"
        << "\n"
        << R"(<text x=")" << num(px) << R"(" y=")" << kTop + kPlotH + 16
        << R"(" text-anchor="middle">)" << fmt("%g", std::pow(10.0, d)) << "</text>\n";
    }
    for (double f : {0.0, 0.25, 0.5, 0.75, 0.9, 1.0}) {
      o << R"(<line x1=")" << kLeft1 << R"(" y1=")" << num(y(f)) << R"(" x2=")" << kLeft1 + kPlotW
        << R"(" y2=")" << num(y(f)) << R"(" stroke="#ddd"/>)"
        << "\n"
        << R"(<text x=")" << kLeft1 - 6 << R"(" y=")" << num(y(f) + 4) << R"(" text-anchor="end">)"
        << fmt("%g", f) << "</text>\n";
    }
    o << R"(<polyline fill="none" stroke="#1f77b4" stroke-width="2" points=")";
    double previous = 0;
    o << num(x(ms(latency.min()))) << "," << num(y(0));
    for (const auto& [value, fraction] : cdf) {
      o << " " << num(x(ms(value))) << "," << num(y(previous)) << " " << num(x(ms(value))) << ","
        << num(y(fraction));
      previous = fraction;
    }
    o << R"("/>)"
      << "\n";
  }

  // Rates over time.
  frame(kLeft2, "Rate over time", "time since the first measured publish (s)", "messages/s");
  size_t n = std::max(delivered.size(), acked.size());
  if (n > 0) {
    double top = 1;
    for (double r : delivered) top = std::max(top, r);
    for (double r : acked) top = std::max(top, r);
    top = nice_ceiling(top * 1.05);
    double span = static_cast<double>(n) * interval_s;
    auto x = [&](double t) { return kLeft2 + t / span * kPlotW; };
    auto y = [&](double r) { return kTop + kPlotH - r / top * kPlotH; };
    for (int i = 0; i <= 4; ++i) {
      double r = top * i / 4, t = span * i / 4;
      o << R"(<line x1=")" << kLeft2 << R"(" y1=")" << num(y(r)) << R"(" x2=")" << kLeft2 + kPlotW
        << R"(" y2=")" << num(y(r)) << R"(" stroke="#ddd"/>)"
        << "\n"
        << R"(<text x=")" << kLeft2 - 6 << R"(" y=")" << num(y(r) + 4) << R"(" text-anchor="end">)"
        << fmt("%.0f", r) << "</text>\n"
        << R"(<text x=")" << num(x(t)) << R"(" y=")" << kTop + kPlotH + 16
        << R"(" text-anchor="middle">)" << fmt("%.3g", t) << "</text>\n";
    }
    // Steps: each interval's rate held across it (one interval still draws a line).
    auto line = [&](const std::vector<double>& series, const char* style) {
      o << "<polyline fill=\"none\" " << style << " points=\"";
      for (size_t i = 0; i < series.size(); ++i) {
        double t = static_cast<double>(i) * interval_s;
        o << (i ? " " : "") << num(x(t)) << "," << num(y(series[i])) << " "
          << num(x(t + interval_s)) << "," << num(y(series[i]));
      }
      o << R"("/>)"
        << "\n";
    };
    line(acked, R"(stroke="#999" stroke-width="1.5" stroke-dasharray="5,3")");
    line(delivered, R"(stroke="#d62728" stroke-width="2")");
    o << R"(<text x=")" << kLeft2 + kPlotW << R"(" y=")" << kTop - 10
      << R"(" text-anchor="end"><tspan fill="#d62728">delivered (all subscribers)</tspan>)"
      << R"(<tspan fill="#777"> - - acked publishes</tspan></text>)"
      << "\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace p2pmq::cli

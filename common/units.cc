#include "common/units.h"

#include <array>
#include <cctype>
#include <cmath>
#include <limits>

namespace chainctl {
namespace {

// A decimal number "123.456" split into its integer part and up to 18
// fraction digits, scaled: fraction = digits / 10^fraction_digits.
struct Decimal {
  uint64_t integer = 0;
  uint64_t fraction = 0;
  int fraction_digits = 0;
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads a decimal number at *pos. Returns false if there is none or if the
// integer part overflows (*overflow is set then).
bool ReadDecimal(std::string_view s, size_t* pos, Decimal* out, bool* overflow) {
  size_t i = *pos;
  bool any = false;
  *out = Decimal{};
  while (i < s.size() && IsDigit(s[i])) {
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (__builtin_mul_overflow(out->integer, 10, &out->integer) ||
        __builtin_add_overflow(out->integer, digit, &out->integer)) {
      *overflow = true;
      return false;
    }
    ++i;
    any = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    bool frac_any = false;
    while (i < s.size() && IsDigit(s[i])) {
      if (out->fraction_digits < 18) {
        out->fraction = out->fraction * 10 + static_cast<uint64_t>(s[i] - '0');
        ++out->fraction_digits;
      }
      ++i;
      frac_any = true;
    }
    if (!frac_any) return false;
    any = true;
  }
  *pos = i;
  return any;
}

uint64_t Pow10(int n) {
  uint64_t r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

__extension__ typedef unsigned __int128 Uint128;

// value * unit, truncated; false on overflow.
bool Scale(const Decimal& d, uint64_t unit, uint64_t* out) {
  uint64_t whole;
  if (__builtin_mul_overflow(d.integer, unit, &whole)) return false;
  // fraction * unit / 10^digits without overflow: split unit.
  Uint128 part = static_cast<Uint128>(d.fraction) * unit;
  part /= Pow10(d.fraction_digits);
  return !__builtin_add_overflow(whole, static_cast<uint64_t>(part), out);
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

std::optional<Duration> ParseDuration(std::string_view text, std::string* err) {
  const std::string usage =
      ": expected a number and a unit (ms, s, m, h, d), e.g. 250ms, 1.5s, 2m, 1h30m";
  if (text.empty()) {
    *err = "empty duration" + usage;
    return std::nullopt;
  }
  uint64_t total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    Decimal d;
    bool overflow = false;
    if (!ReadDecimal(text, &pos, &d, &overflow)) {
      *err = overflow ? "duration " + Quote(text) + " is too large"
                      : "invalid duration " + Quote(text) + usage;
      return std::nullopt;
    }
    uint64_t unit = 0;
    if (text.substr(pos, 2) == "ms") {
      unit = 1, pos += 2;
    } else if (pos < text.size() && text[pos] == 's') {
      unit = 1000, ++pos;
    } else if (pos < text.size() && text[pos] == 'm') {
      unit = 60'000, ++pos;
    } else if (pos < text.size() && text[pos] == 'h') {
      unit = 3'600'000, ++pos;
    } else if (pos < text.size() && text[pos] == 'd') {
      unit = 86'400'000, ++pos;
    } else {
      *err = (pos == text.size() ? "duration " + Quote(text) + " has no unit"
                                 : "invalid duration " + Quote(text)) +
             usage;
      return std::nullopt;
    }
    uint64_t ms;
    if (!Scale(d, unit, &ms) || __builtin_add_overflow(total, ms, &total) ||
        total > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      *err = "duration " + Quote(text) + " is too large";
      return std::nullopt;
    }
  }
  return Duration(static_cast<int64_t>(total));
}

std::string FormatDuration(Duration d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  if (ms % 1000 != 0 && ms < 60'000) {
    if (ms < 1000) return out + std::to_string(ms) + "ms";
    std::string frac = std::to_string(1000 + ms % 1000).substr(1);
    while (frac.back() == '0') frac.pop_back();
    return out + std::to_string(ms / 1000) + "." + frac + "s";
  }
  const std::array<std::pair<int64_t, const char*>, 4> units = {
      {{3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}}};
  for (auto [unit, name] : units) {
    if (ms >= unit) {
      out += std::to_string(ms / unit) + name;
      ms %= unit;
    }
  }
  return out;
}

namespace {

// "Ki" -> 1024, "M" -> 10^6, "" or "B" -> 1; nullopt for anything else.
std::optional<uint64_t> SizeMultiplier(std::string_view suffix) {
  if (suffix.ends_with("B")) suffix.remove_suffix(1);
  if (suffix.empty()) return 1;
  static constexpr std::string_view kPrefixes = "KMGTPE";
  // "k" is the SI spelling of kilo; a lower-case "m" would be milli.
  char letter = suffix[0] == 'k' ? 'K' : suffix[0];
  size_t power = kPrefixes.find(letter);
  std::string_view rest = suffix.substr(1);
  if (power == std::string_view::npos || !(rest.empty() || rest == "i")) return std::nullopt;
  uint64_t base = rest == "i" ? 1024 : 1000;
  uint64_t unit = 1;
  for (size_t i = 0; i <= power; ++i) unit *= base;
  return unit;
}

}  // namespace

std::optional<uint64_t> ParseSize(std::string_view text, std::string* err) {
  const std::string usage =
      ": expected bytes or a number with a suffix (K, M, G, T, P, E or Ki, Mi, Gi, Ti, Pi, "
      "Ei), e.g. 512Mi, 1G";
  size_t pos = 0;
  Decimal d;
  bool overflow = false;
  bool number = ReadDecimal(text, &pos, &d, &overflow);
  std::optional<uint64_t> unit = SizeMultiplier(text.substr(pos));
  uint64_t bytes = 0;
  if (overflow || (number && unit && !Scale(d, *unit, &bytes))) {
    *err = "size " + Quote(text) + " is too large";
  } else if (!number || !unit) {
    *err = "invalid size " + Quote(text) + usage;
  } else if (*unit == 1 && d.fraction != 0) {
    *err = "invalid size " + Quote(text) + ": a byte count must be a whole number";
  } else {
    return bytes;
  }
  return std::nullopt;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr std::array<const char*, 6> kSuffixes = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  std::string suffix;
  for (const char* s : kSuffixes) {
    if (bytes == 0 || bytes % 1024 != 0) break;
    bytes /= 1024;
    suffix = s;
  }
  return std::to_string(bytes) + suffix;
}

std::optional<int64_t> CpuFromCores(double cores, std::string* err) {
  if (!std::isfinite(cores) || cores <= 0 || cores > 1e6) {
    *err = "cpu must be a number of cores above 0 (e.g. 1, 0.5 or 500m)";
    return std::nullopt;
  }
  int64_t milli = static_cast<int64_t>(std::llround(cores * 1000));
  if (milli == 0) {
    *err = "cpu must be at least 1m (0.001 cores)";
    return std::nullopt;
  }
  return milli;
}

std::optional<int64_t> ParseCpu(std::string_view text, std::string* err) {
  size_t pos = 0;
  Decimal d;
  bool overflow = false;
  bool ok = ReadDecimal(text, &pos, &d, &overflow);
  std::string_view rest = text.substr(pos);
  if (!ok || !(rest.empty() || rest == "m") || (rest == "m" && d.fraction_digits > 0)) {
    *err = "invalid cpu " + Quote(text) + ": expected cores (1, 0.5) or millicores (500m)";
    return std::nullopt;
  }
  if (rest == "m") {
    if (d.integer == 0 || d.integer > 1'000'000'000) {
      *err = "cpu must be a number of cores above 0 (e.g. 1, 0.5 or 500m)";
      return std::nullopt;
    }
    return static_cast<int64_t>(d.integer);
  }
  double cores = static_cast<double>(d.integer) +
                 static_cast<double>(d.fraction) / static_cast<double>(Pow10(d.fraction_digits));
  return CpuFromCores(cores, err);
}

}  // namespace chainctl

// A file compiled into the binary (cmake/WarrenEmbed.cmake) and served as is.
#pragma once

#include <span>
#include <string_view>

namespace warren::observer {

struct asset {
  std::string_view name; ///< file name, e.g. "observer.js"
  std::string_view data;
};

/// The content type for a file name (by extension; octet-stream if unknown).
std::string_view content_type(std::string_view name);

} // namespace warren::observer

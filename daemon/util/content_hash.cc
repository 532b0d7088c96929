#include "daemon/util/content_hash.h"

#include <openssl/evp.h>

#include "common/json_text.h"

namespace chainctl::daemon {

std::string CanonicalJson(const nlohmann::json& value) { return DumpJson(value); }

bool Sha256Hex(std::string_view data, std::string* hex, std::string* err) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    *err = "SHA-256 failed (OpenSSL EVP_Digest)";
    return false;
  }
  static constexpr char kDigits[] = "0123456789abcdef";
  hex->clear();
  hex->reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex->push_back(kDigits[digest[i] >> 4]);
    hex->push_back(kDigits[digest[i] & 0x0f]);
  }
  return true;
}

bool JsonContentHash(const nlohmann::json& value, std::string* hex, std::string* err) {
  return Sha256Hex(CanonicalJson(value), hex, err);
}

}  // namespace chainctl::daemon

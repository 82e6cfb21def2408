#include "agent/key_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace p2pmq::agent {
namespace {

std::string errno_text(int e) {
  return std::strerror(e);
}

// Closes on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<void> write_all(int fd, BytesView data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Errc::io, errno_text(errno));
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

// A key protobuf is 68 bytes; anything much larger is not a key file.
constexpr size_t kMaxKeyFileSize = 4096;

}  // namespace

Result<crypto::PrivateKey> read_key_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (f.fd < 0) {
    int e = errno;
    if (e == ENOENT) return fail(Errc::not_found, "key file " + path + " does not exist");
    if (e == EACCES)
      return fail(Errc::io, "key file " + path + " cannot be read (permission denied)");
    return fail(Errc::io, "key file " + path + " cannot be opened: " + errno_text(e));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return fail(Errc::io, "key file " + path + ": " + errno_text(errno));
  if (S_ISDIR(st.st_mode))
    return fail(Errc::invalid_input,
                "key file " + path + " is a directory; give the path of a key file (p2pmq keygen)");
  if (!S_ISREG(st.st_mode))
    return fail(Errc::invalid_input, "key file " + path + " is not a regular file");
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return fail(Errc::invalid_input,
                fmt::format("key file {} is accessible by group or others (mode {:04o}): the "
                            "private key may have leaked; run chmod 600 {}",
                            path, st.st_mode & 07777, path));
  if (static_cast<size_t>(st.st_size) > kMaxKeyFileSize)
    return fail(Errc::invalid_input,
                fmt::format("key file {} is {} bytes: not a key file", path, st.st_size));
  Bytes data(static_cast<size_t>(st.st_size) + 1);
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(f.fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(Errc::io, "key file " + path + " cannot be read: " + errno_text(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  data.resize(got);
  auto key = crypto::PrivateKey::decode(data);
  std::fill(data.begin(), data.end(), 0);
  if (!key)
    return fail(Errc::invalid_input,
                "key file " + path + " is not a libp2p private key: " + key.error().message);
  return key;
}

Result<void> write_key_file(const std::string& path, const crypto::PrivateKey& key) {
  std::filesystem::path target(path);
  std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  std::string tmp =
      (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(std::random_device{}())))
          .string();
  Bytes data = key.encode();
  auto written = [&]() -> Result<void> {
    Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)};
    if (f.fd < 0) return fail(Errc::io, "cannot create " + tmp + ": " + errno_text(errno));
    // The umask cannot widen 0600, but an inherited ACL default might: set it explicitly.
    if (::fchmod(f.fd, 0600) != 0) return fail(Errc::io, tmp + ": " + errno_text(errno));
    if (auto r = write_all(f.fd, data); !r)
      return fail(Errc::io, "cannot write " + tmp + ": " + r.error().message);
    if (::fsync(f.fd) != 0) return fail(Errc::io, "cannot sync " + tmp + ": " + errno_text(errno));
    return {};
  }();
  std::fill(data.begin(), data.end(), 0);
  if (written && ::rename(tmp.c_str(), path.c_str()) != 0)
    written = fail(Errc::io, "cannot rename " + tmp + " to " + path + ": " + errno_text(errno));
  if (!written) {
    ::unlink(tmp.c_str());
    return fail(Errc::io, "key file " + path + ": " + written.error().message);
  }
  // The rename itself survives a power loss only once the directory is synced.
  Fd d{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (d.fd >= 0) (void)::fsync(d.fd);
  return {};
}

Result<crypto::PrivateKey> load_or_create_key_file(const std::string& path, bool& created) {
  created = false;
  auto key = read_key_file(path);
  if (key || key.error().code != Errc::not_found) return key;
  std::filesystem::path file(path);
  if (file.has_parent_path()) {
    std::error_code ec;
    if (!std::filesystem::exists(file.parent_path(), ec)) {
      std::filesystem::create_directories(file.parent_path(), ec);
      if (ec)
        return fail(Errc::io, "cannot create " + file.parent_path().string() + ": " + ec.message());
      std::filesystem::permissions(file.parent_path(), std::filesystem::perms::owner_all, ec);
    }
  }
  auto fresh = crypto::PrivateKey::generate();
  if (auto r = write_key_file(path, fresh); !r) return tl::unexpected(r.error());
  created = true;
  return fresh;
}

}  // namespace p2pmq::agent

#include "agent/key_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace p2pmq::agent {
namespace {

namespace fs = std::filesystem;

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/p2pmq-keyfile-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_mode & 07777;
  }

  std::string dir_;
};

TEST_F(KeyFileTest, WrittenOwnerOnlyAndReadBack) {
  ::umask(022);  // the usual umask: a plain ofstream would make the key 0644
  auto key = crypto::PrivateKey::generate();
  ASSERT_TRUE(write_key_file(path("node.key"), key));
  EXPECT_EQ(mode_of(path("node.key")), 0600u);
  auto read = read_key_file(path("node.key"));
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(read->encode(), key.encode());
  // Replacing keeps 0600 and leaves no temporary file behind.
  auto other = crypto::PrivateKey::generate();
  ASSERT_TRUE(write_key_file(path("node.key"), other));
  EXPECT_EQ(read_key_file(path("node.key"))->encode(), other.encode());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(KeyFileTest, GroupOrWorldAccessibleKeyIsRefused) {
  ASSERT_TRUE(write_key_file(path("node.key"), crypto::PrivateKey::generate()));
  for (mode_t mode : {0644, 0640, 0604, 0620}) {
    ASSERT_EQ(::chmod(path("node.key").c_str(), mode), 0);
    auto r = read_key_file(path("node.key"));
    ASSERT_FALSE(r) << std::oct << mode;
    EXPECT_EQ(r.error().code, Errc::invalid_input);
    EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos) << r.error().message;
  }
  ASSERT_EQ(::chmod(path("node.key").c_str(), 0400), 0);
  EXPECT_TRUE(read_key_file(path("node.key")));
}

TEST_F(KeyFileTest, DirectoryMissingOrGarbageIsAClearError) {
  fs::create_directory(path("a-directory"));
  auto dir = read_key_file(path("a-directory"));
  ASSERT_FALSE(dir);
  EXPECT_NE(dir.error().message.find("is a directory"), std::string::npos) << dir.error().message;
  bool created = true;
  auto again = load_or_create_key_file(path("a-directory"), created);
  EXPECT_FALSE(again) << "a directory is never replaced by a new key";
  EXPECT_FALSE(created);

  EXPECT_EQ(read_key_file(path("missing")).error().code, Errc::not_found);

  {
    std::ofstream garbage(path("garbage"));
    garbage << "not a key";
  }
  ::chmod(path("garbage").c_str(), 0600);
  auto g = read_key_file(path("garbage"));
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().message.find("not a libp2p private key"), std::string::npos);
}

TEST_F(KeyFileTest, LoadOrCreateCreatesOnceWithPrivateDirectories) {
  bool created = false;
  auto key = load_or_create_key_file(path("data/identity.key"), created);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_TRUE(created);
  EXPECT_EQ(mode_of(path("data/identity.key")), 0600u);
  EXPECT_EQ(mode_of(path("data")), 0700u);
  auto same = load_or_create_key_file(path("data/identity.key"), created);
  ASSERT_TRUE(same);
  EXPECT_FALSE(created);
  EXPECT_EQ(same->encode(), key->encode());
}

}  // namespace
}  // namespace p2pmq::agent

// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/linux/vhost_user_transport.hpp"

#include "amp/metal/log.hpp"

namespace amp::virtio {

std::uint64_t VhostUserTransport::driver_features() const noexcept {
  return backend_.acked_features() & ~(std::uint64_t{1} << vhost_user::kFeatureProtocolFeatures);
}

Result<QueueInfo> VhostUserTransport::queue(std::uint32_t index) const noexcept {
  auto q = backend_.queue_info(index);
  if (!q) {
    AMP_LOG_ERROR("vhost-user: %s", q.error().message.c_str());
    return fail(q.error().status);
  }
  return *q;
}

}  // namespace amp::virtio

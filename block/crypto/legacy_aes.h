// qcow2's legacy encryption (crypt_method=1, "aes"): AES-128-CBC per
// 512-byte sector, IV = the sector number (plain64), key = the first 16
// bytes of the passphrase, zero-padded. Insecure; QEMU only reads and
// converts such images, and so does Kiln. The sector number is the guest
// offset / 512 (unlike LUKS in qcow2, which uses the host offset).
#pragma once

#include <span>

#include "block/crypto/sector_cipher.h"

namespace kiln::block::crypto {

Result<SectorCipher> legacy_qcow_aes_cipher(std::span<const uint8_t> passphrase);

} // namespace kiln::block::crypto

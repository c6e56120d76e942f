// ATA/ATAPI register bits and command codes (ATA8-ACS, MMC-5, SFF-8038i).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::hw::ata {

// Status register.
constexpr uint8_t k_bsy = 0x80, k_drdy = 0x40, k_df = 0x20, k_dsc = 0x10, k_drq = 0x08, k_err = 0x01;
// Error register.
constexpr uint8_t k_abrt = 0x04, k_idnf = 0x10, k_unc = 0x40, k_mc = 0x20, k_mcr = 0x08;
// Device control register.
constexpr uint8_t k_nien = 0x02, k_srst = 0x04, k_hob = 0x80;
// Device register.
constexpr uint8_t k_dev_lba = 0x40, k_dev_slave = 0x10;
// ATAPI interrupt reason (sector count register).
constexpr uint8_t k_ireason_cod = 0x01, k_ireason_io = 0x02;

constexpr unsigned k_sector_bytes = 512;
constexpr unsigned k_cd_sector_bytes = 2048;
constexpr unsigned k_max_mult_sectors = 16;
// PIO buffer per device: the largest ATAPI DRQ block (byte count 0xfffe).
constexpr size_t k_pio_buffer_bytes = 65536;

enum Command : uint8_t {
    k_cmd_nop = 0x00,
    k_cmd_device_reset = 0x08,
    k_cmd_recalibrate = 0x10,
    k_cmd_read_sectors = 0x20,
    k_cmd_read_sectors_noretry = 0x21,
    k_cmd_read_sectors_ext = 0x24,
    k_cmd_read_dma_ext = 0x25,
    k_cmd_read_native_max_ext = 0x27,
    k_cmd_read_multiple_ext = 0x29,
    k_cmd_write_sectors = 0x30,
    k_cmd_write_sectors_noretry = 0x31,
    k_cmd_write_sectors_ext = 0x34,
    k_cmd_write_dma_ext = 0x35,
    k_cmd_write_multiple_ext = 0x39,
    k_cmd_write_dma_fua_ext = 0x3d,
    k_cmd_read_verify = 0x40,
    k_cmd_read_verify_noretry = 0x41,
    k_cmd_read_verify_ext = 0x42,
    k_cmd_seek = 0x70,
    k_cmd_exec_diagnostic = 0x90,
    k_cmd_init_params = 0x91,
    k_cmd_packet = 0xa0,
    k_cmd_identify_packet = 0xa1,
    k_cmd_read_multiple = 0xc4,
    k_cmd_write_multiple = 0xc5,
    k_cmd_set_multiple = 0xc6,
    k_cmd_read_dma = 0xc8,
    k_cmd_read_dma_noretry = 0xc9,
    k_cmd_write_dma = 0xca,
    k_cmd_write_dma_noretry = 0xcb,
    k_cmd_standby_immediate = 0xe0,
    k_cmd_idle_immediate = 0xe1,
    k_cmd_standby = 0xe2,
    k_cmd_idle = 0xe3,
    k_cmd_check_power_mode = 0xe5,
    k_cmd_sleep = 0xe6,
    k_cmd_flush_cache = 0xe7,
    k_cmd_flush_cache_ext = 0xea,
    k_cmd_identify = 0xec,
    k_cmd_set_features = 0xef,
    k_cmd_read_native_max = 0xf8,
};

// SCSI/MMC sense keys and additional sense codes used by the CD-ROM.
constexpr uint8_t k_sense_none = 0x00, k_sense_not_ready = 0x02, k_sense_medium_error = 0x03,
                  k_sense_illegal_request = 0x05, k_sense_unit_attention = 0x06;
constexpr uint8_t k_asc_invalid_opcode = 0x20, k_asc_lba_out_of_range = 0x21, k_asc_invalid_field = 0x24,
                  k_asc_medium_may_have_changed = 0x28, k_asc_medium_not_present = 0x3a,
                  k_asc_medium_removal_prevented = 0x53, k_asc_read_error = 0x11;

} // namespace kiln::hw::ata

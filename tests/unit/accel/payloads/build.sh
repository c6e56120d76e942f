#!/bin/sh
# Assembles the test payloads into C array initialisers (boot.S -> boot.inc).
# Needs binutils (as, ld); the generated .inc files are checked in.
set -e
cd "$(dirname "$0")"
for name in boot; do
    as --64 -o "/tmp/$name.o" "$name.S"
    ld -Ttext=0x7c00 --oformat binary -o "/tmp/$name.bin" "/tmp/$name.o"
    python3 -c "
d = open('/tmp/$name.bin', 'rb').read()
print(',\n'.join(', '.join('0x%02x' % b for b in d[i:i + 16]) for i in range(0, len(d), 16)))" > "$name.inc"
done

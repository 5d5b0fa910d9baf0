/* A fixed-size ring buffer of bytes. Not thread-safe. */
#include <stddef.h>
#include <string.h>

#define RING_CAPACITY 4096

struct ring {
	unsigned char data[RING_CAPACITY];
	size_t head;	/* next byte to read */
	size_t len;	/* bytes stored */
};

void ring_init(struct ring *r)
{
	memset(r, 0, sizeof(*r));
}

size_t ring_write(struct ring *r, const unsigned char *src, size_t n)
{
	size_t written = 0;

	while (written < n && r->len < RING_CAPACITY) {
		size_t tail = (r->head + r->len) % RING_CAPACITY;
		r->data[tail] = src[written++];
		r->len++;
	}
	return written;
}

size_t ring_read(struct ring *r, unsigned char *dst, size_t n)
{
	size_t read = 0;

	while (read < n && r->len > 0) {
		dst[read++] = r->data[r->head];
		r->head = (r->head + 1) % RING_CAPACITY;
		r->len--;
	}
	return read;
}

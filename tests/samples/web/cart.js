// A shopping cart that keeps prices in cents to avoid rounding drift.
'use strict';

class Cart {
  constructor(currency = 'EUR') {
    this.currency = currency;
    this.items = new Map();
  }

  add(sku, priceCents, quantity = 1) {
    if (!Number.isInteger(priceCents) || priceCents < 0) {
      throw new RangeError(`invalid price for ${sku}: ${priceCents}`);
    }
    const line = this.items.get(sku) ?? { priceCents, quantity: 0 };
    line.quantity += quantity;
    this.items.set(sku, line);
    return this;
  }

  remove(sku) {
    this.items.delete(sku);
    return this;
  }

  totalCents() {
    let total = 0;
    for (const { priceCents, quantity } of this.items.values()) {
      total += priceCents * quantity;
    }
    return total;
  }

  format() {
    const euros = (this.totalCents() / 100).toFixed(2);
    return `${euros} ${this.currency} — ${this.items.size} article(s)`;
  }
}

module.exports = { Cart };

// Everything the server says is inserted with textContent or as a property,
// never as HTML, so no value can become markup (see the CSP in index.rs).
"use strict";

function text(id, value) {
  document.getElementById(id).textContent = value;
}

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  text("message", info.message);
  text("version", info.version);
  text("hostname", info.hostname);
  document.getElementById("hero").style.backgroundColor = info.color;
  const logo = document.getElementById("logo");
  if (info.logo) {
    logo.src = info.logo;
    logo.hidden = false;
  }
}

async function loadOrders() {
  // The newest first: with more orders than a page, new ones still show.
  const response = await fetch("/api/orders?limit=20&order=desc");
  if (!response.ok) return;
  const page = await response.json();
  const rows = page.orders.map((order) => {
    const row = document.createElement("tr");
    for (const value of [order.id, order.sku, order.quantity, order.total_cents, order.created_at]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.appendChild(cell);
    }
    row.dataset.orderId = String(order.id);
    return row;
  });
  document.getElementById("orders").replaceChildren(...rows);
}

async function placeOrder(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const order = {
    sku: form.get("sku"),
    quantity: Number(form.get("quantity")),
    unit_price_cents: Number(form.get("unit_price_cents")),
  };
  const response = await fetch("/api/checkout", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(order),
  });
  const body = await response.json();
  text("order-status", response.ok ? `order ${body.id} placed` : `failed: ${body.detail || body.error}`);
  await loadOrders();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("order-form").addEventListener("submit", placeOrder);
  loadInfo();
  loadOrders();
  setInterval(loadInfo, 3000);
});

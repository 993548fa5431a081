// What the READMEs' snippets use without defining it: the application's own
// functions and types, and values an earlier snippet made. Checked by
// `node scripts/snippets.mjs` (part of `npm run typecheck`).
type Guest = { id: string; name: string };
type Booking = { id: string; guest: string; nights: number; status: 'confirmed' | 'cancelled' };
type BookingEvents = { 'booking.created': Booking; 'booking.updated': Booking };
type GuestEvents = { 'guest.added': Guest; 'guest.removed': { id: string } };
declare const hub: import('@hubbub/client').Hubbub;
declare const sub: import('@hubbub/client').Subscription<BookingEvents>;

declare const id: string;
declare const logger: { warn(fields: object, message: string): void; error(fields: object, message: string): void };
declare function addRow(b: Booking): void;
declare function updateRow(id: string, b: Partial<Booking>): void;
declare function reloadBookingsFromYourApi(): void;
declare function render(list: Guest[]): void;
declare function refetchBookings(): Promise<void>;
declare function reload(): Promise<void>;
declare function setRows(f: (rows: Booking[]) => Booking[]): void;

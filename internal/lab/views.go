package lab

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

var errNoRows = sql.ErrNoRows

// pageFunc renders one logged-in page from the database.
type pageFunc func(ctx context.Context, c *conn, r *http.Request, u *sessionData) (tmpl, title string, data any, status int, err error)

// page wraps a view like Django's login_required plus a per-request
// connection: unauthenticated requests are redirected to the login page,
// the connection is held until the page is rendered.
func (s *Server) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.currentUser(r)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if u == nil {
			redirectToLogin(w, r)
			return
		}
		ctx := r.Context()
		c, err := s.store.conn(ctx)
		if err != nil {
			s.serverError(w, r, fmt.Errorf("%s: connect: %w", r.URL.Path, err))
			return
		}
		defer c.release()
		tmpl, title, data, status, err := fn(ctx, c, r, u)
		if err != nil {
			s.serverError(w, r, fmt.Errorf("%s: %w", r.URL.Path, err))
			return
		}
		if status == http.StatusNotFound {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		s.render(w, http.StatusOK, tmpl, view{Title: title, CSRF: maskCSRF(s.csrfSecret(w, r)), User: u.Username, Data: data})
	}
}

type klasCount struct {
	Name string
	N    int
}

func (s *Server) dashboard(ctx context.Context, c *conn, r *http.Request, u *sessionData) (string, string, any, int, error) {
	var d struct {
		Count   int
		Volume  float64
		Audits  int
		PerKlas []klasCount
	}
	if err := c.queryRow(ctx, "SELECT COUNT(*), COALESCE(SUM(volume), 0) FROM pekerjaan").Scan(&d.Count, &d.Volume); err != nil {
		return "", "", nil, 0, fmt.Errorf("query pekerjaan: %w", err)
	}
	if err := c.queryRow(ctx, "SELECT COUNT(*) FROM audit_trail WHERE username = ?", u.Username).Scan(&d.Audits); err != nil {
		return "", "", nil, 0, fmt.Errorf("query audit_trail: %w", err)
	}
	rows, err := c.query(ctx, "SELECT k.nama, COUNT(*) FROM pekerjaan p JOIN klasifikasi k ON k.id = p.klasifikasi_id GROUP BY k.nama ORDER BY k.nama")
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query klasifikasi: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k klasCount
		if err := rows.Scan(&k.Name, &k.N); err != nil {
			return "", "", nil, 0, fmt.Errorf("query klasifikasi: %w", err)
		}
		d.PerKlas = append(d.PerKlas, k)
	}
	if err := rows.Err(); err != nil {
		return "", "", nil, 0, fmt.Errorf("query klasifikasi: %w", err)
	}
	return "dashboard", "Dashboard", d, 0, nil
}

func (s *Server) pekerjaan(ctx context.Context, c *conn, r *http.Request, u *sessionData) (string, string, any, int, error) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	page = max(page, 1)
	type row struct {
		ID                       int64
		Kode, Nama, Satuan, Klas string
		Volume                   float64
	}
	var d struct {
		Rows []row
		Next int
	}
	const per = 50
	rows, err := c.query(ctx, "SELECT p.id, p.kode, p.nama, p.satuan, p.volume, k.nama FROM pekerjaan p JOIN klasifikasi k ON k.id = p.klasifikasi_id ORDER BY p.id LIMIT ? OFFSET ?", per, (page-1)*per)
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query pekerjaan: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.ID, &x.Kode, &x.Nama, &x.Satuan, &x.Volume, &x.Klas); err != nil {
			return "", "", nil, 0, fmt.Errorf("query pekerjaan: %w", err)
		}
		d.Rows = append(d.Rows, x)
	}
	if err := rows.Err(); err != nil {
		return "", "", nil, 0, fmt.Errorf("query pekerjaan: %w", err)
	}
	if len(d.Rows) == per {
		d.Next = page + 1
	}
	return "pekerjaan", "Pekerjaan", d, 0, nil
}

func (s *Server) rincian(ctx context.Context, c *conn, r *http.Request, u *sessionData) (string, string, any, int, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return "", "", nil, http.StatusNotFound, nil
	}
	type row struct {
		Kategori, Uraian, Satuan string
		Koef, Harga, Jumlah      float64
	}
	var d struct {
		Kode, Nama, Satuan string
		Rows               []row
		Total              float64
	}
	err = c.queryRow(ctx, "SELECT kode, nama, satuan FROM pekerjaan WHERE id = ?", id).Scan(&d.Kode, &d.Nama, &d.Satuan)
	if err == errNoRows {
		return "", "", nil, http.StatusNotFound, nil
	}
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query pekerjaan: %w", err)
	}
	// With --missing-index this filter scans all of rincian_ahsp.
	const q = "SELECT kategori, uraian, satuan, koefisien, harga_satuan FROM rincian_ahsp WHERE pekerjaan_id = ? ORDER BY kategori, id"
	defer c.logSlow(time.Now(), q, id)
	rows, err := c.query(ctx, q, id)
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query rincian_ahsp: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.Kategori, &x.Uraian, &x.Satuan, &x.Koef, &x.Harga); err != nil {
			return "", "", nil, 0, fmt.Errorf("query rincian_ahsp: %w", err)
		}
		x.Jumlah = x.Koef * x.Harga
		d.Total += x.Jumlah
		d.Rows = append(d.Rows, x)
	}
	if err := rows.Err(); err != nil {
		return "", "", nil, 0, fmt.Errorf("query rincian_ahsp: %w", err)
	}
	return "rincian", "Rincian AHSP", d, 0, nil
}

func (s *Server) rekap(ctx context.Context, c *conn, r *http.Request, u *sessionData) (string, string, any, int, error) {
	type row struct {
		Name                string
		N                   int
		TK, BHN, ALT, Total float64
	}
	var d struct {
		Rows  []row
		Total float64
	}
	// The heavy aggregate: every analysis row joined to its work item.
	const q = `SELECT k.nama, COUNT(DISTINCT p.id),
  SUM(CASE WHEN r.kategori = 'TK' THEN p.volume * r.koefisien * r.harga_satuan ELSE 0 END),
  SUM(CASE WHEN r.kategori = 'BHN' THEN p.volume * r.koefisien * r.harga_satuan ELSE 0 END),
  SUM(CASE WHEN r.kategori = 'ALT' THEN p.volume * r.koefisien * r.harga_satuan ELSE 0 END)
FROM rincian_ahsp r JOIN pekerjaan p ON p.id = r.pekerjaan_id JOIN klasifikasi k ON k.id = p.klasifikasi_id
GROUP BY k.nama ORDER BY k.nama`
	defer c.logSlow(time.Now(), q)
	rows, err := c.query(ctx, q)
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query rekap: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x row
		if err := rows.Scan(&x.Name, &x.N, &x.TK, &x.BHN, &x.ALT); err != nil {
			return "", "", nil, 0, fmt.Errorf("query rekap: %w", err)
		}
		x.Total = x.TK + x.BHN + x.ALT
		d.Total += x.Total
		d.Rows = append(d.Rows, x)
	}
	if err := rows.Err(); err != nil {
		return "", "", nil, 0, fmt.Errorf("query rekap: %w", err)
	}
	return "rekap", "Rekap RAB", d, 0, nil
}

func (s *Server) audit(ctx context.Context, c *conn, r *http.Request, u *sessionData) (string, string, any, int, error) {
	if err := c.exec(ctx, "INSERT INTO audit_trail (username, path, created_at) VALUES (?, ?, ?)", u.Username, r.URL.Path, time.Now().UnixMilli()); err != nil {
		return "", "", nil, 0, fmt.Errorf("insert audit_trail: %w", err)
	}
	type row struct{ When, Path string }
	var d []row
	rows, err := c.query(ctx, "SELECT path, created_at FROM audit_trail WHERE username = ? ORDER BY id DESC LIMIT 50", u.Username)
	if err != nil {
		return "", "", nil, 0, fmt.Errorf("query audit_trail: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var x row
		var ms int64
		if err := rows.Scan(&x.Path, &ms); err != nil {
			return "", "", nil, 0, fmt.Errorf("query audit_trail: %w", err)
		}
		x.When = time.UnixMilli(ms).Format("2006-01-02 15:04:05")
		d = append(d, x)
	}
	if err := rows.Err(); err != nil {
		return "", "", nil, 0, fmt.Errorf("query audit_trail: %w", err)
	}
	return "audit", "Audit Trail", d, 0, nil
}

// export streams analysis rows as CSV, paced to take ExportHold, holding its
// connection (and its PgBouncer server) the whole time.
func (s *Server) export(w http.ResponseWriter, r *http.Request) {
	u, err := s.currentUser(r)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if u == nil {
		redirectToLogin(w, r)
		return
	}
	ctx := r.Context()
	c, err := s.store.conn(ctx)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("export: connect: %w", err))
		return
	}
	defer c.release()
	const limit, chunks = 2000, 10
	type rec struct {
		id                        int64
		kode, kat, uraian, satuan string
		koef, harga               float64
	}
	rows, err := c.query(ctx, "SELECT r.id, p.kode, r.kategori, r.uraian, r.satuan, r.koefisien, r.harga_satuan FROM rincian_ahsp r JOIN pekerjaan p ON p.id = r.pekerjaan_id ORDER BY r.id LIMIT ?", limit)
	if err != nil {
		s.serverError(w, r, fmt.Errorf("export: query rincian_ahsp: %w", err))
		return
	}
	var recs []rec
	for rows.Next() {
		var x rec
		if err := rows.Scan(&x.id, &x.kode, &x.kat, &x.uraian, &x.satuan, &x.koef, &x.harga); err != nil {
			rows.Close()
			s.serverError(w, r, fmt.Errorf("export: query rincian_ahsp: %w", err))
			return
		}
		recs = append(recs, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		s.serverError(w, r, fmt.Errorf("export: query rincian_ahsp: %w", err))
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="rincian-ahsp.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "kode", "kategori", "uraian", "satuan", "koefisien", "harga_satuan"})
	per := (len(recs) + chunks - 1) / chunks
	for i, x := range recs {
		_ = cw.Write([]string{strconv.FormatInt(x.id, 10), x.kode, x.kat, x.uraian, x.satuan,
			strconv.FormatFloat(x.koef, 'f', 4, 64), strconv.FormatFloat(x.harga, 'f', 2, 64)})
		if per > 0 && (i+1)%per == 0 {
			cw.Flush()
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			if err := sleepCtx(ctx, s.cfg.ExportHold/chunks); err != nil {
				return
			}
		}
	}
	cw.Flush()
}

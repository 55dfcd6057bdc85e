package lab

import "html/template"

// The pages render like the seed's Django templates: allauth's login form
// ({{ form.as_p }} with a non-field error list) and plain app pages.
var pages = template.Must(template.New("base").Parse(`{{define "head"}}<!DOCTYPE html>
<html lang="id"><head><meta charset="utf-8"><title>{{.Title}} | AHSP</title></head><body>
{{end}}{{define "nav"}}<nav><a href="/dashboard/">Dashboard</a> <a href="/pekerjaan/">Pekerjaan</a> <a href="/rekap-rab/">Rekap RAB</a> <a href="/audit-trail/">Audit Trail</a> <a href="/export/">Export</a>
<form method="post" action="/accounts/logout/"><input type="hidden" name="csrfmiddlewaretoken" value="{{.CSRF}}"><span>{{.User}}</span> <button type="submit">Sign Out</button></form></nav>
{{end}}{{define "login"}}{{template "head" .}}<h1>Sign In</h1>
<form class="login" method="post" action="/accounts/login/">
<input type="hidden" name="csrfmiddlewaretoken" value="{{.CSRF}}">
{{if .Errors}}<ul class="errorlist nonfield">{{range .Errors}}<li>{{.}}</li>{{end}}</ul>
{{end}}<p><label for="id_login">Username:</label> <input type="text" name="login" placeholder="Username" autocomplete="username" maxlength="150" required id="id_login" value="{{.Login}}"></p>
<p><label for="id_password">Password:</label> <input type="password" name="password" placeholder="Password" autocomplete="current-password" required id="id_password"></p>
{{if .Next}}<input type="hidden" name="next" value="{{.Next}}">
{{end}}<button class="primaryAction" type="submit">Sign In</button>
</form>
</body></html>
{{end}}{{define "logout"}}{{template "head" .}}<h1>Sign Out</h1>
<form method="post" action="/accounts/logout/"><input type="hidden" name="csrfmiddlewaretoken" value="{{.CSRF}}"><p>Are you sure you want to sign out?</p><button type="submit">Sign Out</button></form>
</body></html>
{{end}}{{define "dashboard"}}{{template "head" .}}{{template "nav" .}}<h1>Dashboard</h1>
<p>Jumlah pekerjaan: <b id="jumlah">{{.Data.Count}}</b>; total volume {{printf "%.2f" .Data.Volume}}; aktivitas Anda: {{.Data.Audits}}</p>
<table><tr><th>Klasifikasi</th><th>Pekerjaan</th></tr>{{range .Data.PerKlas}}<tr><td>{{.Name}}</td><td>{{.N}}</td></tr>{{end}}</table>
</body></html>
{{end}}{{define "pekerjaan"}}{{template "head" .}}{{template "nav" .}}<h1>Daftar Pekerjaan</h1>
<table><tr><th>Kode</th><th>Uraian</th><th>Satuan</th><th>Volume</th><th>Klasifikasi</th></tr>
{{range .Data.Rows}}<tr><td><a href="/rincian-ahsp/{{.ID}}/">{{.Kode}}</a></td><td>{{.Nama}}</td><td>{{.Satuan}}</td><td>{{printf "%.2f" .Volume}}</td><td>{{.Klas}}</td></tr>
{{end}}</table>{{if .Data.Next}}<a href="/pekerjaan/?page={{.Data.Next}}">berikutnya</a>{{end}}
</body></html>
{{end}}{{define "rincian"}}{{template "head" .}}{{template "nav" .}}<h1>Rincian AHSP {{.Data.Kode}}</h1><p>{{.Data.Nama}} ({{.Data.Satuan}})</p>
<table><tr><th>Kategori</th><th>Uraian</th><th>Satuan</th><th>Koefisien</th><th>Harga Satuan</th><th>Jumlah</th></tr>
{{range .Data.Rows}}<tr><td>{{.Kategori}}</td><td>{{.Uraian}}</td><td>{{.Satuan}}</td><td>{{printf "%.4f" .Koef}}</td><td>{{printf "%.2f" .Harga}}</td><td>{{printf "%.2f" .Jumlah}}</td></tr>
{{end}}</table><p>Harga satuan pekerjaan: <b>{{printf "%.2f" .Data.Total}}</b></p>
</body></html>
{{end}}{{define "rekap"}}{{template "head" .}}{{template "nav" .}}<h1>Rekap RAB</h1>
<table><tr><th>Klasifikasi</th><th>Pekerjaan</th><th>Upah</th><th>Bahan</th><th>Alat</th><th>Jumlah</th></tr>
{{range .Data.Rows}}<tr><td>{{.Name}}</td><td>{{.N}}</td><td>{{printf "%.0f" .TK}}</td><td>{{printf "%.0f" .BHN}}</td><td>{{printf "%.0f" .ALT}}</td><td>{{printf "%.0f" .Total}}</td></tr>
{{end}}</table><p>Total RAB: <b>{{printf "%.0f" .Data.Total}}</b></p>
</body></html>
{{end}}{{define "audit"}}{{template "head" .}}{{template "nav" .}}<h1>Audit Trail</h1>
<table><tr><th>Waktu</th><th>Halaman</th></tr>{{range .Data}}<tr><td>{{.When}}</td><td>{{.Path}}</td></tr>{{end}}</table>
</body></html>
{{end}}`))
